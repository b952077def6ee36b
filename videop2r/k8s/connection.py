"""Reach the Kubernetes API: kubeconfig first (--kubeconfig, $KUBECONFIG, ~/.kube/config), else the
pod's service account (in-cluster), else a clear error saying what is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class KubernetesError(RuntimeError):
    """The API cannot be reached, refuses, or lacks what we need; the message says what to do."""


@dataclass
class Connection:
    api: client.ApiClient
    # -- namespace of the kubeconfig context or of the pod; "default" when neither says
    namespace: str
    # -- base URL of the API server, for messages
    host: str


def connect(kubeconfig: str | None = None, context: str | None = None) -> Connection:
    """An API client and the default namespace, from a kubeconfig or the in-cluster service account."""
    configuration = client.Configuration()
    kubeconfig_file = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
    default_file = Path("~/.kube/config").expanduser()
    has_kubeconfig = bool(kubeconfig_file) or default_file.is_file()
    if kubeconfig and not Path(kubeconfig).is_file():
        raise KubernetesError(f"kubeconfig {kubeconfig} does not exist")
    if has_kubeconfig:
        try:
            config.load_kube_config(config_file=kubeconfig_file or str(default_file), context=context,
                                    client_configuration=configuration)
        except (ConfigException, OSError, ValueError) as exc:
            raise KubernetesError(f"cannot use kubeconfig {kubeconfig_file or default_file}: {exc}") from exc
        namespace = _kubeconfig_namespace(kubeconfig_file or str(default_file), context)
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException as exc:
            raise KubernetesError(
                "no Kubernetes credentials: no kubeconfig (--kubeconfig, $KUBECONFIG or ~/.kube/config) "
                f"and not running in a pod with a service account ({exc})") from exc
        namespace = IN_CLUSTER_NAMESPACE.read_text().strip() if IN_CLUSTER_NAMESPACE.is_file() else "default"
    # One retry on a refused connection is enough: an API that is not there should fail fast.
    configuration.retries = 1
    return Connection(client.ApiClient(configuration), namespace or "default", configuration.host)


def _kubeconfig_namespace(kubeconfig_file: str | None, context: str | None) -> str:
    try:
        contexts, active = config.list_kube_config_contexts(config_file=kubeconfig_file)
    except (ConfigException, OSError, ValueError):
        return "default"
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
    return ((chosen or {}).get("context") or {}).get("namespace") or "default"
