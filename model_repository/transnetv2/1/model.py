"""Triton Python-backend model: runs the TransNetV2 ONNX file beside it.

Runtime (config parameter `runtime`): `auto` takes OpenVINO on a CPU instance
when it is installed (1.7x ONNX Runtime's speed on this network in f32, 3.4x
in bf16; bench/speed.py) and ONNX Runtime otherwise, with CUDA on a GPU
instance. `cpu_precision` (OpenVINO only): f32, bf16, or auto, which is bf16
where the CPU computes it natively. Names and types come from the model
configuration, which `videoapi model build` derives from the ONNX file itself.
"""

import importlib.util
import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils


def _onnxruntime(path, threads, gpu_device):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
    providers = ["CPUExecutionProvider"]
    if gpu_device is not None and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": gpu_device}))
    session = ort.InferenceSession(path, sess_options=options, providers=providers)
    float_inputs = {i.name for i in session.get_inputs() if i.type == "tensor(float)"}
    where = "CUDA" if providers[0] != "CPUExecutionProvider" else "CPU"
    return (lambda names, feed: session.run(names, feed)), float_inputs, where


def _openvino(path, precision, threads):
    import openvino as ov

    core = ov.Core()
    if precision == "auto":
        precision = "bf16" if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32"
    if precision not in ("f32", "bf16"):
        raise ValueError(f"cpu_precision {precision!r}: expected f32, bf16 or auto")
    config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
    if threads > 0:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(path, "CPU", config)
    float_inputs = {i.get_any_name() for i in compiled.inputs if i.get_element_type() == ov.Type.f32}
    request = compiled.create_infer_request()

    def run(names, feed):
        results = request.infer(feed)
        return [results[compiled.output(name)] for name in names]

    return run, float_inputs, f"CPU {precision}"


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
        if runtime == "auto":
            runtime = "openvino" if not on_gpu and importlib.util.find_spec("openvino") else "onnxruntime"
        try:
            if runtime == "openvino":
                self.run, self.float_inputs, where = _openvino(path, params.get("cpu_precision", "auto"), threads)
            elif runtime == "onnxruntime":
                gpu_device = int(args.get("model_instance_device_id", "0")) if on_gpu else None
                self.run, self.float_inputs, where = _onnxruntime(path, threads, gpu_device)
            else:
                raise ValueError(f"runtime {runtime!r}: expected auto, openvino or onnxruntime")
        except Exception as exc:  # a corrupt file, a runtime not installed, a bad parameter: say which and why
            raise pb_utils.TritonModelException(f"cannot load ONNX file {path} with {runtime}: {exc}") from exc
        print(f"transnetv2: {runtime} on {where}", flush=True)

        self.input_names = [i["name"] for i in config["input"]]
        self.output_names = [o["name"] for o in config["output"]]

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
