"""tests/k8s: the k8s/ client library through its CLI k8s/k8sctl, against the Kubernetes API
emulator (tests/kube-emulator). Needs root, the plain build's runtime/rtctl and k8s/k8sctl:

    K8SCTL=build-k8s/k8s/k8sctl KUBE_EMULATOR_RTCTL=build/runtime/rtctl \
        /usr/bin/python3 -m pytest tests/k8s
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "kube-emulator"))
from fixture import kube_emulator  # noqa: E402,F401  (session fixture)
