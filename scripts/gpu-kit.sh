#!/usr/bin/env bash
# Packs what `make bench-gpu` needs on a GPU machine that reaches no package registry, in
# carry-sized parts: each part is a git-ignored folder .gpukit/N/ of at most PART_MB, so that
# one part travels per call (one call carries at most 64 MiB, the working tree included).
#
#   scripts/gpu-kit.sh            # builds .gpukit/1 .. .gpukit/N
#   scripts/gpu-unkit.sh          # there: joins them, unpacks, prints the bench's arguments
#
# Part 1 is small and self-sufficient for a first probe: the cp312 wheels docmill needs beyond
# what the CUDA image holds (numpy, OpenCV and onnx are there), redis-server's Debian packages,
# and the SROIE sample receipts and PaddleOCR pages from ../shared (evaluation data: never
# committed). The rest is onnxruntime-gpu, unpacked as pip would install it but without its
# C API library and TensorRT provider (Python needs neither), xz-compressed, and the model set
# from the model cache.
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=${ORT_VERSION:-1.31.1}
MODELS=${MODELS:-pp-ocrv6}
CACHE=${DOCMILL_CACHE_DIR:-$HOME/.cache/docmill}
SHARED=${SHARED:-../shared}
PART_MB=${PART_MB:-60}
WORK=${WORK:-/tmp/docmill-gpukit}
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64
           manylinux2014_x86_64 manylinux1_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64)
# What docmill and the bench import that the CUDA image lacks (KINDS.md lists what it holds).
WHEELS=(celery redis pyclipper boto3 "pydantic>=2.6,<3" jsonschema
        "pypdfium2>=5,<6" pikepdf "moto[s3]>=5" flask flask-cors onnxconverter-common==1.16.0)

download() {
  python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]/#/--platform=}" "$@"
}

rm -rf "$WORK" .gpukit && mkdir -p "$WORK"/{kit/wheels,kit/debs,ort} .gpukit
grep -qx '/.gpukit/' .git/info/exclude 2>/dev/null || echo '/.gpukit/' >>.git/info/exclude

echo "wheels (resolved for cp312, the image's own packages left out)"
download -d "$WORK/all" "${WHEELS[@]}"
for whl in "$WORK"/all/*.whl; do
  case "$(basename "$whl" | cut -d- -f1 | tr 'A-Z_' 'a-z-')" in
    numpy|opencv-python-headless|onnx|protobuf|pillow|lxml|rich|prometheus-client|packaging|requests|\
    werkzeug|jinja2|pyyaml|click|typing-extensions|urllib3|certifi|idna|six|markupsafe|attrs|\
    charset-normalizer|pygments|markdown-it-py|mdurl|flatbuffers|sympy|mpmath|ml-dtypes|python-dateutil) ;;
    botocore) ;;  # slimmed below
    *) cp "$whl" "$WORK/kit/wheels/" ;;
  esac
done
# botocore's 28 MB of service models: only S3's and the auth services' are used.
python3 - "$WORK"/all/botocore-*.whl "$WORK/kit/wheels" <<'EOF'
import sys, zipfile
from pathlib import Path
keep = {"s3", "s3control", "sts", "sso", "sso-oidc"}
src = Path(sys.argv[1])
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(Path(sys.argv[2]) / src.name, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zout:
    for item in zin.infolist():
        parts = item.filename.split("/")
        if parts[:2] == ["botocore", "data"] and len(parts) > 3 and parts[2] not in keep:
            continue
        zout.writestr(item, zin.read(item))
EOF

echo "redis-server from Debian (dpkg -x there, never into /)"
(cd "$WORK/kit/debs" && apt-get download redis-tools libjemalloc2 liblzf1 libatomic1 2>/dev/null)

echo "evaluation images from $SHARED"
mkdir -p "$WORK/kit/shared/data/sroie_sample" "$WORK/kit/shared/data/paddleocr/doc"
cp -r "$SHARED/data/sroie_sample/images" "$WORK/kit/shared/data/sroie_sample/"
cp -r "$SHARED/data/paddleocr/doc/imgs" "$SHARED/data/paddleocr/doc/imgs_en" "$WORK/kit/shared/data/paddleocr/doc/"
mkdir -p .gpukit/1 && tar -C "$WORK/kit" -cf .gpukit/1/kit.tar .

echo "onnxruntime-gpu $ORT_VERSION and $MODELS (xz; a few minutes)"
download --no-deps -d "$WORK/ortwhl" "onnxruntime-gpu==$ORT_VERSION"
(cd "$WORK/ort" && unzip -q "$WORK"/ortwhl/*.whl && rm -f onnxruntime/capi/libonnxruntime.so.* \
  onnxruntime/capi/libonnxruntime_providers_tensorrt.so)
mkdir -p "$WORK/cache/models"
cp -r "$CACHE/models/$MODELS" "$WORK/cache/models/" && rm -rf "$WORK"/cache/models/"$MODELS"/*/.prepared
tar -C "$WORK" -cf - ort cache | xz -9 -T0 >"$WORK/big.tar.xz"
(cd "$WORK" && split -b "${PART_MB}M" -d big.tar.xz part.)
n=2
for part in "$WORK"/part.*; do mkdir -p ".gpukit/$n" && mv "$part" ".gpukit/$n/" && n=$((n + 1)); done
du -sh .gpukit/*
