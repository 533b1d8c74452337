"""A fault to inject into a weight sync, for the tests and the GPU checks of its recovery."""

from typing import Any


class FirstTensorMislabelled:
    """A weight source (a learner group) whose sync metadata names its first tensor wrongly:
    every engine fails on the first chunk and leaves the rest of the send unreceived (NCCL's
    sender would then block for good; the stand-in blocks too, until aborted). Everything else
    is the wrapped source's."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)

    def weight_meta(self) -> dict[str, Any]:
        meta = dict(self.source.weight_meta())
        meta["names"] = ["no.such.weight", *meta["names"][1:]]
        return meta
