# NVIDIA's Triton container with TransNetV2: native ONNX Runtime backend (TensorRT fp16) on the GPU.
# Build after `videoapi model build` so that model_repository/transnetv2/1/model.onnx exists.
FROM nvcr.io/nvidia/tritonserver:24.08-py3
COPY model_repository/ /models/
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=15s --timeout=3s CMD curl -fsS http://127.0.0.1:8000/v2/health/ready || exit 1
CMD ["tritonserver", "--model-repository=/models", "--model-config-name=gpu", "--strict-readiness=true", "--exit-on-error=true"]
