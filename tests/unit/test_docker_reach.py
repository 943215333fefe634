"""Which networks dockroute can reach: its own container found only from real evidence (the mounts the
engine makes for it, confirmed by the engine), the engine's host recognised by its bridge routes, and
macvlan/overlay networks judged unreachable on the host only when no local route covers them."""

import pytest

from discover import engine_provider
from discover.docker_model import DockerSettings, Reach
from discover.docker_provider import DockerProvider
from discover.docker_reach import find_own_container, find_reach, host_gateway, local_routes, own_ids

OWN = "a67fd6f47c4adefad77bfd75e5c23913512922e41005fad5bc3deb1b3b24b0f5"
OTHER = "339705f8c3954b8f0367ae2717797e23ecb574a2fe1fa0d252d45ac8830e477a"

# /proc/self/mountinfo on the engine's host while `docker run -d --ipc=shareable ...` runs (real, this
# machine): the shareable container's shm mount holds its id, which is not dockroute's
HOST_MOUNTINFO = f"""\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
25 49 0:42 / /var/lib/docker/containers/{OTHER}/mounts/shm rw,nosuid,nodev,noexec,relatime shared:3 - tmpfs \
shm rw,size=65536k
"""
HOST_CGROUP = "0::/user.slice/user-0.slice/session-1.scope\n"

# The same files read inside a container of that engine (real, cut to the lines that matter)
CONTAINER_MOUNTINFO = f"""\
115 64 0:51 / / rw,relatime master:4 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/6JPI
121 120 0:29 /docker/{OWN} /sys/fs/cgroup/cpu ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu
131 117 0:59 / /dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=65536k
132 115 254:0 /var/lib/docker/containers/{OWN}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw
133 115 254:0 /var/lib/docker/containers/{OWN}/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw
134 115 254:0 /var/lib/docker/containers/{OWN}/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw
"""
CONTAINER_CGROUP = f"9:name=systemd:/docker/{OWN}\n0::/docker/{OWN}\n"

# /proc/net/route and /proc/net/ipv6_route of the engine's host (real): docker0 routes 172.17.0.0/16
ROUTE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""
IPV6_ROUTE = """\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 \
00000100 00000001 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 \
00000100 00000002 00000000 00000001  docker0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 \
00000400 00000003 00000000 00000003     eth0
"""
SHIM = "macvlan-shim\t00C0A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"  # 192.168.192.0/24


class Engine:
    """inspect_container and networks, as the engine answers them."""

    def __init__(self, containers=(), networks=()):
        self.containers = {c["Id"]: c for c in containers}
        self.nets = list(networks)

    def inspect_container(self, ref):
        from docker.errors import NotFound

        for cid, c in self.containers.items():
            if ref in (cid, c.get("Name", "").lstrip("/")) or (len(ref) >= 12 and cid.startswith(ref)):
                return c
        raise NotFound("no such container")

    def networks(self):
        return self.nets


def box(cid, name, hostname=None, mode="front", networks=("front",)):
    return {
        "Id": cid,
        "Name": "/" + name,
        "Config": {"Hostname": hostname or cid[:12]},
        "HostConfig": {"NetworkMode": mode},
        "NetworkSettings": {"Networks": {n: {} for n in networks}},
    }


def files(mountinfo, cgroup):
    return {"/proc/self/mountinfo": mountinfo, "/proc/self/cgroup": cgroup}.get


def test_on_the_host_another_containers_shm_mount_is_not_dockroutes_container():
    assert own_ids(HOST_MOUNTINFO, HOST_CGROUP) == []
    engine = Engine([box(OTHER, "shareable")])
    own = find_own_container(engine, "myhost", files(HOST_MOUNTINFO, HOST_CGROUP), lambda p: False)
    assert own == ""


def test_in_a_container_its_id_comes_from_the_mounted_files_and_is_confirmed():
    assert own_ids(CONTAINER_MOUNTINFO, CONTAINER_CGROUP) == [OWN]
    engine = Engine([box(OWN, "proxy"), box(OTHER, "shareable")])
    read = files(CONTAINER_MOUNTINFO, CONTAINER_CGROUP)
    assert find_own_container(engine, OWN[:12], read, lambda p: True) == OWN
    # --hostname proxy: the engine's Config.Hostname says so
    engine = Engine([box(OWN, "proxy", hostname="proxy")])
    assert find_own_container(engine, "proxy", read, lambda p: True) == OWN


def test_a_container_whose_hostname_is_not_ours_is_doubt_not_a_verdict():
    engine = Engine([box(OWN, "proxy", hostname="else")])
    read = files(CONTAINER_MOUNTINFO, CONTAINER_CGROUP)
    assert find_own_container(engine, "mine", read, lambda p: True) is None
    # in a container of another engine (/.dockerenv, ids this engine does not know): doubt too
    assert find_own_container(Engine(), "mine", read, lambda p: True) is None


def test_the_cgroup_leaf_alone_finds_it():
    assert own_ids("", f"0::/system.slice/docker-{OWN}.scope\n") == [OWN]


BRIDGE = {"Name": "bridge", "Driver": "bridge", "IPAM": {"Config": [{"Subnet": "172.17.0.0/16"}]}}
MACVLAN = {"Name": "mv", "Driver": "macvlan", "IPAM": {"Config": [{"Subnet": "192.168.192.0/24"}]}}
OVERLAY = {"Name": "ov", "Driver": "overlay", "IPAM": {"Config": [{"Subnet": "10.0.1.0/24"}]}}
ROUTES = local_routes({"/proc/net/route": ROUTE, "/proc/net/ipv6_route": IPV6_ROUTE}.get)


def test_local_routes_are_read_without_the_default_routes():
    assert [str(r) for r in ROUTES] == ["172.17.0.0/16", "192.0.2.0/24", "fd00::/64"]


def test_on_the_host_with_the_shareable_container_running_the_reach_is_the_hosts():
    """The reviewer's case: a shareable container on the host did make dockroute judge itself that
    container and every other network unreachable."""
    engine = Engine([box(OTHER, "shareable", networks=("bridge",))], [BRIDGE, MACVLAN, OVERLAY])
    own = find_own_container(engine, "myhost", files(HOST_MOUNTINFO, HOST_CGROUP), lambda p: False)
    reach = find_reach(engine, "unix:///var/run/docker.sock", own, ROUTES)
    assert reach.judged and reach.container == ""
    assert reach.why("bridge") == "" and reach.why("newnet") == ""
    assert set(reach.blocked) == {"mv", "ov"}


def test_a_macvlan_network_with_a_shim_route_on_the_host_is_reachable():
    routes = local_routes({"/proc/net/route": ROUTE + SHIM, "/proc/net/ipv6_route": ""}.get)
    reach = find_reach(Engine([], [BRIDGE, MACVLAN, OVERLAY]), "unix:///var/run/docker.sock", "", routes)
    assert reach.judged and set(reach.blocked) == {"ov"}


@pytest.mark.parametrize("own", ["", None])
def test_without_a_bridge_routed_here_nothing_is_judged(own):
    """Rootless Docker, Docker Desktop, a container of another engine: the engine's bridges are not in
    this network namespace, so it is not the engine's host as far as anyone can tell."""
    reach = find_reach(Engine([], [BRIDGE, MACVLAN]), "unix:///var/run/docker.sock", own, [])
    assert reach == Reach()


def test_doubt_about_the_own_container_on_the_engines_host_judges_as_the_host():
    """dockroute in the container that runs the engine itself (/.dockerenv, not a container of that
    engine): the engine's bridge is routed here, so it is the engine's host."""
    reach = find_reach(Engine([], [BRIDGE, MACVLAN]), "unix:///var/run/docker.sock", None, ROUTES)
    assert reach.judged and set(reach.blocked) == {"mv"}


def test_a_remote_engine_is_not_judged():
    assert find_reach(Engine([], [BRIDGE]), "tcp://10.1.1.1:2376", "", ROUTES) == Reach()


def test_in_a_container_the_reach_is_its_networks():
    engine = Engine([box(OWN, "proxy", networks=("front", "extra"))])
    reach = find_reach(engine, "unix:///var/run/docker.sock", OWN, ROUTES)
    assert reach == Reach(judged=True, container="proxy", networks=frozenset({"front", "extra"}))


def test_network_mode_container_follows_that_containers_networks():
    engine = Engine(
        [
            box(OWN, "proxy", mode=f"container:{OTHER}", networks=()),
            box(OTHER, "netns", networks=("front", "back")),
        ]
    )
    reach = find_reach(engine, "unix:///var/run/docker.sock", OWN, ROUTES)
    # the fix names the container whose network it uses: the one `docker network connect` takes
    assert reach == Reach(judged=True, container="netns", networks=frozenset({"front", "back"}))
    by_name = Engine([box(OWN, "proxy", mode="container:netns", networks=()), box(OTHER, "netns")])
    assert find_reach(by_name, "unix:///var/run/docker.sock", OWN, ROUTES).container == "netns"


@pytest.mark.parametrize("mode", ["container:gone", "none"])
def test_an_own_container_with_no_networks_to_follow_judges_nothing(mode):
    engine = Engine([box(OWN, "proxy", mode=mode, networks=())])
    assert find_reach(engine, "unix:///var/run/docker.sock", OWN, ROUTES) == Reach()


def test_the_provider_looks_for_its_container_once_and_again_when_it_is_gone(monkeypatch):
    calls, hosts = [], []
    monkeypatch.setattr(engine_provider, "find_own_container", lambda client: calls.append(1) or OWN)
    monkeypatch.setattr(engine_provider, "host_gateway", lambda: hosts.append(1) or "172.17.0.1")
    monkeypatch.setattr(engine_provider, "local_routes", lambda: ROUTES)
    p = DockerProvider(DockerSettings())
    engine = Engine([box(OWN, "proxy")])
    assert p._find_reach(engine).container == "proxy"  # noqa: SLF001
    assert p._find_reach(engine).host == "172.17.0.1"  # noqa: SLF001
    assert calls == hosts == [1]  # a name lookup can wait on the resolver: once, with the container
    engine.containers.clear()
    assert p._find_reach(engine) == Reach()  # noqa: SLF001
    p._find_reach(engine)  # noqa: SLF001
    assert calls == hosts == [1, 1]


def test_the_provider_in_no_container_does_not_look_up_the_host(monkeypatch):
    monkeypatch.setattr(engine_provider, "find_own_container", lambda client: "")
    monkeypatch.setattr(engine_provider, "host_gateway", lambda: pytest.fail("looked up"))
    monkeypatch.setattr(engine_provider, "local_routes", lambda: ROUTES)
    reach = DockerProvider(DockerSettings())._find_reach(Engine([], [BRIDGE]))  # noqa: SLF001
    assert reach.judged and not reach.container and reach.host == ""


# /etc/hosts of a container run with --add-host host.docker.internal:host-gateway (real, this machine)
ADD_HOST = (
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    "172.17.0.1\thost.docker.internal\n172.17.0.2\t37febf54a0e0\n"
)


def test_host_docker_internal_is_read_from_etc_hosts_without_a_query():
    assert host_gateway({"/etc/hosts": ADD_HOST}.get, lambda name: pytest.fail("queried")) == "172.17.0.1"


def test_host_docker_internal_is_asked_of_the_resolver_when_etc_hosts_lacks_it():
    asked = []
    hosts = "127.0.0.1 localhost\n# 172.17.0.1 host.docker.internal\n"
    assert host_gateway({"/etc/hosts": hosts}.get, lambda n: asked.append(n) or ["192.168.65.254"]) == (
        "192.168.65.254"
    )
    assert asked == ["host.docker.internal"]
    assert host_gateway(lambda p: "", lambda n: []) == ""


def test_in_a_container_the_reach_carries_where_the_host_is():
    engine = Engine([box(OWN, "proxy")])
    reach = find_reach(engine, "unix:///var/run/docker.sock", OWN, ROUTES, "172.17.0.1")
    assert reach.container == "proxy" and reach.host == "172.17.0.1"
    # dockroute on the host's network: it is on the host, 127.0.0.1 is the host's
    host_net = Engine([box(OWN, "proxy", mode="host", networks=("host",))], [BRIDGE])
    on_host = find_reach(host_net, "unix:///var/run/docker.sock", OWN, ROUTES, "172.17.0.1")
    assert on_host.judged and not on_host.container and on_host.host == ""


def test_a_short_hostname_is_no_id_prefix():
    """A host named "a" in a container of another engine: a container whose id starts with "a" is not
    dockroute's for that."""
    engine = Engine([box("a" + OWN[1:], "a", hostname="other")])
    assert find_own_container(engine, "a", files("", ""), lambda p: True) is None
