"""Triton Python-backend model: runs the TransNetV2 ONNX file beside it with ONNX Runtime.

Portable default: CUDA when ONNX Runtime has it and the instance is on a GPU,
CPU otherwise. Names and types come from the model configuration, which
`videoapi model build` derives from the ONNX file itself.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        path = os.path.join(args["model_repository"], args["model_version"], params.get("onnx_file", "model.onnx"))
        if not os.path.isfile(path):
            raise pb_utils.TritonModelException(f"ONNX file not found: {path}; run `videoapi model build`")

        options = ort.SessionOptions()
        threads = int(params.get("intra_op_threads", "0"))
        if threads > 0:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if args.get("model_instance_kind") == "GPU" and "CUDAExecutionProvider" in ort.get_available_providers():
            device = int(args.get("model_instance_device_id", "0"))
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device}))
        try:
            self.session = ort.InferenceSession(path, sess_options=options, providers=providers)
        except Exception as exc:  # a corrupt file: say which and why
            raise pb_utils.TritonModelException(f"cannot load ONNX file {path}: {exc}") from exc

        self.input_names = [i["name"] for i in config["input"]]
        self.output_names = [o["name"] for o in config["output"]]
        self.onnx_types = {i.name: i.type for i in self.session.get_inputs()}

    def execute(self, requests):
        # Dynamic batching hands several requests at once: run them as one batch.
        arrays = [[pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.input_names] for r in requests]
        sizes = [a[0].shape[0] for a in arrays]
        feed = {}
        for k, name in enumerate(self.input_names):
            parts = [a[k] for a in arrays]
            batch = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
            if self.onnx_types.get(name) == "tensor(float)":
                batch = batch.astype(np.float32)
            feed[name] = batch
        try:
            outputs = self.session.run(self.output_names, feed)
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
        self.session = None
