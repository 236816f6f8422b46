"""Triton Python-backend model: runs the TransNetV2 ONNX file beside it.

Runtime (config parameter `runtime`) and `cpu_precision` are chosen by
videoapi/model/runtime.py (copied beside this file), the same code the
in-process engine runs: `auto` is OpenVINO on a CPU when installed (bf16 where
native, else INT8 where the build wrote model.int8.xml beside the ONNX file and
the CPU has AVX2/VNNI, else f32), ONNX Runtime otherwise, with CUDA on a GPU
instance. Names and types come from the model configuration, which `videoapi
model build` derives from the ONNX file itself.
"""

import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

# The runtime choice is videoapi.model.runtime's: `videoapi model build` copies it here, since
# Triton's interpreter may not have the videoapi package.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    from transnetv2_runtime import load_model, preferred_window, warm_up
except ImportError:
    from videoapi.model.runtime import load_model, preferred_window, warm_up


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        path = os.path.join(args["model_repository"], args["model_version"], params.get("onnx_file", "model.onnx"))
        if not os.path.isfile(path):
            raise pb_utils.TritonModelException(f"ONNX file not found: {path}; run `videoapi model build`")

        threads = int(params.get("intra_op_threads", "0"))
        on_gpu = args.get("model_instance_kind") == "GPU"
        runtime = params.get("runtime", "auto")
        gpu_device = int(args.get("model_instance_device_id", "0")) if on_gpu else None
        try:
            runtime, loaded = load_model(
                path,
                runtime=runtime,
                precision=params.get("cpu_precision", "auto"),
                threads=threads,
                gpu_device=gpu_device,
            )
        except Exception as exc:  # a corrupt file, a runtime not installed, a bad parameter: say which and why
            raise pb_utils.TritonModelException(f"cannot load ONNX file {path} with {runtime}: {exc}") from exc
        self.run, self.float_inputs = loaded.run, loaded.float_inputs
        print(f"transnetv2: {runtime} on {loaded.where}", flush=True)
        if params.get("warm_shape") and not on_gpu:
            self._warm_up(path, runtime, params, loaded)

        self.input_names = [i["name"] for i in config["input"]]
        self.output_names = [o["name"] for o in config["output"]]

    def _warm_up(self, path, runtime, params, loaded):
        """Run the batch the workers send ("4x150": windows x frames) at load, at the window this CPU's build
        prefers: the first job then runs as fast as the next (runtime.warm_up)."""
        try:
            batch, window = (int(n) for n in params["warm_shape"].split("x"))
        except ValueError:
            raise pb_utils.TritonModelException(
                f"warm_shape {params['warm_shape']!r}: expected windows x frames, such as 4x150"
            ) from None
        window = preferred_window(path, runtime=runtime, precision=params.get("cpu_precision", "auto")) or window
        try:
            warm_up(loaded, batch, window)
        except Exception as exc:  # only the first job's speed is at stake: the model serves as it would have
            print(f"transnetv2: warm-up at {batch}x{window} failed: {exc}", flush=True)
            return
        static = ", ".join("x".join(map(str, shape[:2])) for shape in loaded.fixed_shapes()) or "none"
        print(f"transnetv2: warmed up at {batch}x{window} (static shapes: {static})", flush=True)

    def execute(self, requests):
        # Dynamic batching hands several requests at once: run them as one batch.
        arrays = [[pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.input_names] for r in requests]
        sizes = [a[0].shape[0] for a in arrays]
        feed = {}
        for k, name in enumerate(self.input_names):
            parts = [a[k] for a in arrays]
            batch = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
            feed[name] = batch.astype(np.float32) if name in self.float_inputs else batch
        try:
            outputs = self.run(self.output_names, feed)
        except Exception as exc:
            error = pb_utils.TritonError(f"inference failed: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]

        responses, start = [], 0
        for size in sizes:
            tensors = [
                pb_utils.Tensor(name, np.ascontiguousarray(out[start : start + size], dtype=np.float32))
                for name, out in zip(self.output_names, outputs)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses

    def finalize(self):
        self.run = None
