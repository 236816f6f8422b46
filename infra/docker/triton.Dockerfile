# NVIDIA's Triton container with TransNetV2: native ONNX Runtime backend (TensorRT fp16) on the GPU.
# The model repository is the one inside the wheel `make wheel` builds (dist/): installed in a first stage
# (Triton's own Python is older than the package's), only its model_repository/ comes into the image.
FROM python:3.11-slim AS wheel
COPY dist/videoapi-0.1.0-py3-none-any.whl /tmp/wheels/
RUN pip install --no-cache-dir --no-deps --no-compile --target /opt/videoapi /tmp/wheels/videoapi-0.1.0-py3-none-any.whl

FROM nvcr.io/nvidia/tritonserver:24.08-py3
COPY --from=wheel /opt/videoapi/videoapi/model_repository/ /models/
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=15s --timeout=3s CMD curl -fsS http://127.0.0.1:8000/v2/health/ready || exit 1
CMD ["tritonserver", "--model-repository=/models", "--model-config-name=gpu", "--strict-readiness=true", "--exit-on-error=true"]
