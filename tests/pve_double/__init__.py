"""A faithful double of the Proxmox VE HTTP API, for integration tests, the demo and benchmarks.

    from tests.pve_double import DoubleServer, generate_cluster, load_scenario
    with DoubleServer(generate_cluster(nodes=3, guests=50)) as d:
        requests.get(d.api_url + "/cluster/resources", headers=d.auth_header(), verify=d.ca_path)
"""

from .cluster import (
    DEFAULT_POOLS,
    DEFAULT_TAGS,
    ROLES,
    Cluster,
    ClusterView,
    Guest,
    Node,
    Pool,
    PveError,
    Storage,
    Token,
    User,
    cluster_from_dict,
    default_storages,
    generate_cluster,
    load_scenario,
    planned_ip,
    write_tfvars,
)
from .server import API_PREFIX, CONTROL_PREFIX, SAMPLE_SCENARIO, DoubleServer, Fault

__all__ = [
    "API_PREFIX", "CONTROL_PREFIX", "DEFAULT_POOLS", "DEFAULT_TAGS", "ROLES", "SAMPLE_SCENARIO",
    "Cluster", "ClusterView", "DoubleServer", "Fault", "Guest", "Node", "Pool", "PveError", "Storage",
    "Token", "User", "cluster_from_dict", "default_storages", "generate_cluster", "load_scenario",
    "planned_ip", "write_tfvars",
]
