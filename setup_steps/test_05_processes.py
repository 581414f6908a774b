"""Change the processes Deactivate user, Reactivate user and Lock user: bind each task to its data
pool and sub-process."""

from __future__ import annotations

import pytest

from fixtures.steps import manual
from smartid import errors
from smartid.deployment import Deployment
from smartid.plan import Changes
from smartid.site import Binding

EPIC = "Change processes"
STORY = "Task bindings"
DOC_URL = "https://doc.nexusgroup.com/pub/import-and-edit-bpmn-processes-in-identity-manager"

pytestmark = [pytest.mark.setup, pytest.mark.order(5)]


def test_task_bound(
    deployment: Deployment, changes: Changes, planning: bool, binding: Binding
) -> None:
    """SETUP-501 The task is bound to the guide's data pool and sub-process."""
    idm = deployment.site.idm
    if idm is not None and idm.admin_api == "none":
        manual(
            f"In IDM Admin open Home > Processes (Process Import before 5.0.1), edit "
            f"'{binding.process}', Task List > '{binding.task}' > Attributes: data pool "
            f"'{binding.data_pool}', Sub-process '{binding.sub_process}', Save"
        )
    client, _ = deployment.working_admin()
    with client:
        process = client.process(binding.process)
        task = process.task(binding.task)
        if task is None and planning:
            # The package upload pending in this plan brings the task.
            changes.change(
                f"process '{binding.process}'",
                f"task '{binding.task}'",
                "update",
                lambda: None,
                new=f"{binding.data_pool} / {binding.sub_process}",
            )
            return
        if task is None:
            raise errors.NotFoundError(
                client.admin_url, 404, f"process '{binding.process}' has no task '{binding.task}'"
            )
        if (task.data_pool, task.sub_process) != (binding.data_pool, binding.sub_process):
            changes.change(
                f"process '{binding.process}'",
                f"task '{binding.task}'",
                "update",
                lambda: client.bind_task(
                    binding.process,
                    binding.task,
                    version=process.version,
                    data_pool=binding.data_pool,
                    sub_process=binding.sub_process,
                ),
                old=f"{task.data_pool} / {task.sub_process}",
                new=f"{binding.data_pool} / {binding.sub_process}",
            )
        if changes.apply:
            after = client.process(binding.process).task(binding.task)
            assert after is not None
            assert (after.data_pool, after.sub_process) == (binding.data_pool, binding.sub_process)
