"""tests/kube-emulator: the Kubernetes API emulator, proven with real kubectl and
python-kubernetes. Run with Debian's interpreter (needs root and a built rtctl):

    KUBE_EMULATOR_RTCTL=build-kube/runtime/rtctl /usr/bin/python3 -m pytest tests/kube-emulator
"""
from fixture import kube_emulator  # noqa: F401  (session fixture)
