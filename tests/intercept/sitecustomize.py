"""Loaded by every Python process of a test's subprocess run (the driver and Ray's workers) when this
folder is on PYTHONPATH:
- every `urllib.request.urlopen` call is written to $FLP_URL_LOG (one URL per line) and refused, so a
  test sees which network requests a run attempts (Flower's telemetry) without making them;
- with $FLP_FAULT=`raise:P` or `die:P`, partition P's ClientApp raises, or its process exits, in every
  round it trains (fault injection for the failure-accounting tests).
"""

import importlib.abc
import importlib.util
import os
import sys
import urllib.error
import urllib.request

_URL_LOG = os.environ.get("FLP_URL_LOG")
_FAULT = os.environ.get("FLP_FAULT")


def _refused_urlopen(request, *args, **kwargs):
    url = getattr(request, "full_url", request)
    if _URL_LOG:
        with open(_URL_LOG, "a") as log:
            log.write(f"{url}\n")
    raise urllib.error.URLError("network intercepted by the test")


urllib.request.urlopen = _refused_urlopen


def _faulty(handle_train, kind: str, partition: int):
    def handle(settings, hooks, msg, context):
        if int(context.node_config["partition-id"]) == partition:
            if kind == "die":
                os._exit(17)
            raise RuntimeError(f"injected fault in partition {partition}")
        return handle_train(settings, hooks, msg, context)

    return handle


class _PatchClientApp(importlib.abc.MetaPathFinder):
    """Wraps `fl_privacy.apps.client_app.handle_train` right after that module is imported."""

    def find_spec(self, name, path, target=None):
        if name != "fl_privacy.apps.client_app":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        sys.meta_path.insert(0, self)
        loader = spec.loader
        original_exec = loader.exec_module
        kind, partition = _FAULT.split(":")

        def exec_module(module):
            original_exec(module)
            module.handle_train = _faulty(module.handle_train, kind, int(partition))

        loader.exec_module = exec_module
        return spec


if _FAULT:
    sys.meta_path.insert(0, _PatchClientApp())
