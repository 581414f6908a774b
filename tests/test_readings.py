"""IdmReadings asks IDM once per run and shares the answer, a failed one too: a bad answer is
not fetched again by every check that asks the same question."""

from __future__ import annotations

import pytest

from smartid.errors import HTTPStatusError
from smartid.verify import IdmReadings


class _Client:
    def __init__(self, answer: bool | Exception) -> None:
        self.answer = answer
        self.asked = 0

    def login_works(self) -> bool:
        self.asked += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.mark.parametrize("answer", [True, False])
def test_an_answer_is_asked_once(answer: bool) -> None:
    client = _Client(answer)
    readings = IdmReadings(client)
    assert [readings.login_works for _ in range(6)] == [answer] * 6
    assert client.asked == 1


def test_a_failed_read_is_remembered_with_its_one_sentence() -> None:
    client = _Client(HTTPStatusError("https://idm/idm-admin/ws/deploy/configuration", 500, ""))
    readings = IdmReadings(client)
    sentences = []
    for _ in range(6):
        with pytest.raises(HTTPStatusError) as caught:
            _ = readings.login_works
        sentences.append(str(caught.value))
    assert client.asked == 1
    assert set(sentences) == {"https://idm/idm-admin/ws/deploy/configuration: HTTP 500"}
