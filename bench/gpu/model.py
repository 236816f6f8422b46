"""Triton Python-backend model for the GPU benchmark: the batch-agnostic TransNetV2 module in PyTorch on CUDA.

(The production GPU path is the ONNX Runtime backend of NVIDIA's Triton container, configs/gpu.pbtxt; this
one runs where only the pytriton wheel and PyTorch are at hand.)

Parameters (config.pbtxt): `precision` fp16|fp32; `channels_last` yes: 3D channels-last weights (the input,
[B, T, H, W, C] permuted to [B, C, T, H, W], already is channels-last, so every convolution runs NDHWC);
`FORCE_CPU_ONLY_INPUT_TENSORS` no: inputs stay where Triton has them (on the GPU when the client sent them
through CUDA shared memory) and are taken by DLPack without a copy.
"""

import json
import sys

import numpy as np
import torch
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        sys.path[:0] = [p for p in params.get("python_path", "").split(":") if p]
        from videoapi.model.export import exportable_module

        self.fp16 = params.get("precision") == "fp16"
        self.device = torch.device(f"cuda:{args.get('model_instance_device_id', '0')}")
        torch.cuda.set_device(self.device)
        self.module = exportable_module("cuda").to(self.device).eval()
        if params.get("channels_last") == "yes":
            self.module = self.module.to(memory_format=torch.channels_last_3d)
        self.gpu_inputs = params.get("FORCE_CPU_ONLY_INPUT_TENSORS") == "no"

    def _input(self, request):
        tensor = pb_utils.get_input_tensor_by_name(request, "frames")
        if self.gpu_inputs:
            return torch.from_dlpack(tensor.to_dlpack())
        return torch.from_numpy(tensor.as_numpy())

    def execute(self, requests):
        arrays = [self._input(r) for r in requests]
        sizes = [len(a) for a in arrays]
        parts = [a.to(self.device) for a in arrays]  # no copy for inputs already on the GPU
        batch = parts[0] if len(parts) == 1 else torch.cat(parts)
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=self.fp16):
            single, many = self.module(batch)
        single, many = single.float().cpu().numpy(), many.float().cpu().numpy()
        responses, start = [], 0
        for size in sizes:
            tensors = [
                pb_utils.Tensor("single_frame", np.array(single[start : start + size], copy=True)),
                pb_utils.Tensor("many_hot", np.array(many[start : start + size], copy=True)),
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses
