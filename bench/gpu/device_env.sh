# Source on the device machine, from the repository root: unpacks what a call carried in .carry/ (made here by
# bench/gpu/bundle.sh) and points Python at it. PYTHONPATH for the benches; TRITON_PYTHON for Triton's backend
# stub, which embeds the Python it finds and needs numpy<2 (the device's own python keeps numpy 2).
C=${CARRY:-.carry}
mkdir -p /tmp/site /tmp/stubenv
for t in "$C"/*.tar.xz; do tar -xJf "$t" -C /tmp/site || return 1; done
python3 -m venv --without-pip /tmp/stubenv || return 1
STUB_SITE=$(/tmp/stubenv/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
tar -xJf "$C/stub-numpy.txz" -C "$STUB_SITE" || return 1
python3 -c 'import site; print(site.getsitepackages()[0])' > "$STUB_SITE/device.pth"
echo /tmp/site >> "$STUB_SITE/device.pth"
export PYTHONPATH=/tmp/site:$PWD TRITON_PYTHON=/tmp/stubenv/bin/python3 PYTHONUNBUFFERED=1
