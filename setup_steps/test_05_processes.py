"""Change the processes Deactivate user, Reactivate user and Lock user: bind each task to its data
pool and sub-process."""

from __future__ import annotations

import pytest

from fixtures.steps import IdmView
from smartid import errors
from smartid.deployment import Deployment
from smartid.idm.models import Process
from smartid.plan import Changes, converge
from smartid.site import Binding

EPIC = "Change processes"
STORY = "Task bindings"
DOC_URL = "https://doc.nexusgroup.com/pub/import-and-edit-bpmn-processes-in-identity-manager"

pytestmark = [pytest.mark.setup, pytest.mark.order(5)]


def _with_task(process: Process, binding: Binding, where: str) -> Process:
    if process.task(binding.task) is None:
        raise errors.NotFoundError(
            where, 404, f"process '{binding.process}' has no task '{binding.task}'"
        )
    return process


def _bound(process: Process, task: str) -> tuple[str | None, str | None]:
    found = process.task(task)
    assert found is not None
    return found.data_pool, found.sub_process


def test_task_bound(
    deployment: Deployment, changes: Changes, idm_view: IdmView, binding: Binding
) -> None:
    """SETUP-501 The task is bound to the guide's data pool and sub-process."""
    contract = deployment.uses_contract
    client, _ = deployment.working_admin()
    with client:

        def bind(process: Process | None) -> None:
            client.bind_task(
                binding.process,
                binding.task,
                version=process.version if process is not None else 0,
                data_pool=binding.data_pool,
                sub_process=binding.sub_process,
            )

        def seen() -> Process | None:
            process = idm_view.process(binding.process)
            return process if process is not None and process.task(binding.task) else None

        converge(
            changes,
            f"process '{binding.process}'",
            f"task '{binding.task}'",
            "update",
            want=(binding.data_pool, binding.sub_process),
            value=lambda process: _bound(process, binding.task),
            read=(lambda: _with_task(client.process(binding.process), binding, client.admin_url))
            if contract
            else None,
            write=bind if contract else None,
            manual=f"In IDM Admin open Home > Processes (Process Import before 5.0.1), edit "
            f"'{binding.process}', Task List > '{binding.task}' > Attributes: data pool "
            f"'{binding.data_pool}', Sub-process '{binding.sub_process}', Save",
            where=client.admin_url,
            observe=seen,
            seen_in=idm_view.source,
            show=lambda value: f"{value[0] or 'no data pool'} / {value[1] or 'no sub-process'}",
        )
