"""Traefik parity for the Docker provider: the cases of Traefik v3's own provider tests
(``pkg/provider/docker/config_test.go``: ``TestDynConfBuilder_DefaultRule`` and ``TestDynConfBuilder_build``,
traefik/traefik at fd5a576df2) run through dockroute's label logic: the same containers (labels, ports,
networks, health) and provider options must give the same HTTP routers (names, services, default rules,
middlewares, entry points), services (server URLs: ports, schemes; passHostHeader) and middleware names.

The table below is Traefik's, transcribed field for field (only the HTTP part of the expected
configuration is compared; Traefik fills in defaults dockroute's model leaves implicit: the wrr strategy,
the 100 ms flush interval). Cases that test what dockroute does not do are marked, never dropped:
TCP/UDP routing and TLS stores from labels (refused or warned by name). Conflicts between containers are
Traefik's: the definition is left out (those cases run like the others).
"""

import pytest

from discover.docker_labels import build_docker_config
from discover.docker_model import ContainerInfo, DockerSettings, PortBinding

CASES = [
    {
        "desc": "default rule with no variable",
        "containers": [
            {
                "name": "Test",
                "labels": {},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`foo.bar`)"},
        "routers": {"Test": {"service": "Test", "rule": "Host(`foo.bar`)"}},
        "services": {"Test": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True}},
        "middlewares": [],
    },
    {
        "desc": "default rule with service name",
        "containers": [
            {
                "name": "Test",
                "labels": {},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ .Name }}.foo.bar`)"},
        "routers": {"Test": {"service": "Test", "rule": "Host(`Test.foo.bar`)"}},
        "services": {"Test": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True}},
        "middlewares": [],
    },
    {
        "desc": "default rule with label",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.domain": "foo.bar"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": 'Host("{{ .Name }}.{{ index .Labels "traefik.domain" }}")'},
        "routers": {"Test": {"service": "Test", "rule": 'Host("Test.foo.bar")'}},
        "services": {"Test": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True}},
        "middlewares": [],
    },
    {
        "desc": "invalid rule",
        "containers": [
            {
                "name": "Test",
                "labels": {},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": 'Host("{{ .Toto }}")'},
        "routers": {},
        "services": {"Test": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True}},
        "middlewares": [],
    },
    {
        "desc": "undefined rule",
        "containers": [
            {
                "name": "Test",
                "labels": {},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": ""},
        "routers": {},
        "services": {"Test": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True}},
        "middlewares": [],
    },
    {
        "desc": "default template rule",
        "containers": [
            {
                "name": "Test",
                "labels": {},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}`)"},
        "routers": {"Test": {"service": "Test", "rule": "Host(`Test`)"}},
        "services": {"Test": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True}},
        "middlewares": [],
    },
    {
        "desc": "invalid HTTP service definition",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.http.services.test": ""},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {},
        "middlewares": [],
    },
    {
        "desc": "invalid TCP service definition",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.tcp.services.test": ""},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {},
        "middlewares": [],
    },
    {
        "desc": "invalid UDP service definition",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.udp.services.test": ""},
                "ports": [(80, "udp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {},
        "middlewares": [],
    },
    {
        "desc": "one container no label",
        "containers": [
            {
                "name": "Test",
                "labels": {},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Test": {"service": "Test", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {"Test": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True}},
        "middlewares": [],
    },
    {
        "desc": "two containers no label",
        "containers": [
            {
                "name": "Test",
                "labels": {},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            },
            {
                "name": "Test2",
                "labels": {},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.2"},
            },
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {
            "Test": {"service": "Test", "rule": "Host(`Test.traefik.wtf`)"},
            "Test2": {"service": "Test2", "rule": "Host(`Test2.traefik.wtf`)"},
        },
        "services": {
            "Test": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True},
            "Test2": {"urls": ["http://127.0.0.2:80"], "pass_host_header": True},
        },
        "middlewares": [],
    },
    {
        "desc": "two containers with same service name no label",
        "containers": [
            {
                "name": "Test",
                "labels": {},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
                "id": "1",
            },
            {
                "name": "Test",
                "labels": {},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.2"},
                "id": "2",
            },
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Test": {"service": "Test", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {
            "Test": {"urls": ["http://127.0.0.1:80", "http://127.0.0.2:80"], "pass_host_header": True}
        },
        "middlewares": [],
    },
    {
        "desc": "one container with label (not on server)",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.http.services.Service1.loadbalancer.passhostheader": "true"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Test": {"service": "Service1", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {"Service1": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True}},
        "middlewares": [],
    },
    {
        "desc": "one container with labels",
        "containers": [
            {
                "name": "Test",
                "labels": {
                    "traefik.http.services.Service1.loadbalancer.passhostheader": "true",
                    "traefik.http.routers.Router1.rule": "Host(`foo.com`)",
                    "traefik.http.routers.Router1.service": "Service1",
                },
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Router1": {"service": "Service1", "rule": "Host(`foo.com`)"}},
        "services": {"Service1": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True}},
        "middlewares": [],
    },
    {
        "desc": "one container with rule label",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.http.routers.Router1.rule": "Host(`foo.com`)"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Router1": {"service": "Test", "rule": "Host(`foo.com`)"}},
        "services": {"Test": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True}},
        "middlewares": [],
    },
    {
        "desc": "one container with rule label and one service",
        "containers": [
            {
                "name": "Test",
                "labels": {
                    "traefik.http.routers.Router1.rule": "Host(`foo.com`)",
                    "traefik.http.services.Service1.loadbalancer.passhostheader": "true",
                },
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Router1": {"service": "Service1", "rule": "Host(`foo.com`)"}},
        "services": {"Service1": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True}},
        "middlewares": [],
    },
    {
        "desc": "one container with rule label and two services",
        "containers": [
            {
                "name": "Test",
                "labels": {
                    "traefik.http.routers.Router1.rule": "Host(`foo.com`)",
                    "traefik.http.services.Service1.loadbalancer.passhostheader": "true",
                    "traefik.http.services.Service2.loadbalancer.passhostheader": "true",
                },
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {
            "Service1": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True},
            "Service2": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True},
        },
        "middlewares": [],
    },
    {
        "desc": "one router, one specified but undefined service -> specified one is assigned, but automatic "
        "is created instead",
        "containers": [
            {
                "name": "Test",
                "labels": {
                    "traefik.http.routers.Router1.rule": "Host(`foo.com`)",
                    "traefik.http.routers.Router1.service": "Service1",
                },
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Router1": {"service": "Service1", "rule": "Host(`foo.com`)"}},
        "services": {"Test": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True}},
        "middlewares": [],
    },
    {
        "desc": "two containers with same service name and different passhostheader",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.http.services.Service1.loadbalancer.passhostheader": "true"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
                "id": "1",
            },
            {
                "name": "Test",
                "labels": {"traefik.http.services.Service1.loadbalancer.passhostheader": "false"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.2"},
                "id": "2",
            },
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Test": {"service": "Service1", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {},
        "middlewares": [],
    },
    {
        "desc": "three containers with same service name and different passhostheader",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.http.services.Service1.loadbalancer.passhostheader": "false"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
                "id": "1",
            },
            {
                "name": "Test",
                "labels": {"traefik.http.services.Service1.loadbalancer.passhostheader": "true"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.2"},
                "id": "2",
            },
            {
                "name": "Test",
                "labels": {"traefik.http.services.Service1.loadbalancer.passhostheader": "true"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.2"},
                "id": "3",
            },
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Test": {"service": "Service1", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {},
        "middlewares": [],
    },
    {
        "desc": "two containers with same service name and same LB methods",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.http.services.Service1.loadbalancer.passhostheader": "true"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
                "id": "1",
            },
            {
                "name": "Test",
                "labels": {"traefik.http.services.Service1.loadbalancer.passhostheader": "true"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.2"},
                "id": "2",
            },
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Test": {"service": "Service1", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {
            "Service1": {"urls": ["http://127.0.0.1:80", "http://127.0.0.2:80"], "pass_host_header": True}
        },
        "middlewares": [],
    },
    {
        "desc": "one container with InFlightReq in label (default value)",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.http.middlewares.Middleware1.inflightreq.amount": "42"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Test": {"service": "Test", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {"Test": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True}},
        "middlewares": ["Middleware1"],
    },
    {
        "desc": "two containers with two identical middlewares",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.http.middlewares.Middleware1.inflightreq.amount": "42"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
                "id": "1",
            },
            {
                "name": "Test",
                "labels": {"traefik.http.middlewares.Middleware1.inflightreq.amount": "42"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.2"},
                "id": "2",
            },
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Test": {"service": "Test", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {
            "Test": {"urls": ["http://127.0.0.1:80", "http://127.0.0.2:80"], "pass_host_header": True}
        },
        "middlewares": ["Middleware1"],
    },
    {
        "desc": "two containers with two different middlewares with same name",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.http.middlewares.Middleware1.inflightreq.amount": "42"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
                "id": "1",
            },
            {
                "name": "Test",
                "labels": {"traefik.http.middlewares.Middleware1.inflightreq.amount": "41"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.2"},
                "id": "2",
            },
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Test": {"service": "Test", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {
            "Test": {"urls": ["http://127.0.0.1:80", "http://127.0.0.2:80"], "pass_host_header": True}
        },
        "middlewares": [],
    },
    {
        "desc": "three containers with different middlewares with same name",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.http.middlewares.Middleware1.inflightreq.amount": "42"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
                "id": "1",
            },
            {
                "name": "Test",
                "labels": {"traefik.http.middlewares.Middleware1.inflightreq.amount": "41"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.2"},
                "id": "2",
            },
            {
                "name": "Test",
                "labels": {"traefik.http.middlewares.Middleware1.inflightreq.amount": "40"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.3"},
                "id": "3",
            },
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Test": {"service": "Test", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {
            "Test": {
                "urls": ["http://127.0.0.1:80", "http://127.0.0.2:80", "http://127.0.0.3:80"],
                "pass_host_header": True,
            }
        },
        "middlewares": [],
    },
    {
        "desc": "two containers with two different routers with same name",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.http.routers.Router1.rule": "Host(`foo.com`)"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
                "id": "1",
            },
            {
                "name": "Test",
                "labels": {"traefik.http.routers.Router1.rule": "Host(`bar.com`)"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.2"},
                "id": "2",
            },
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {
            "Test": {"urls": ["http://127.0.0.1:80", "http://127.0.0.2:80"], "pass_host_header": True}
        },
        "middlewares": [],
    },
    {
        "desc": "three containers with different routers with same name",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.http.routers.Router1.rule": "Host(`foo.com`)"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
                "id": "1",
            },
            {
                "name": "Test",
                "labels": {"traefik.http.routers.Router1.rule": "Host(`bar.com`)"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.2"},
                "id": "2",
            },
            {
                "name": "Test",
                "labels": {"traefik.http.routers.Router1.rule": "Host(`foobar.com`)"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.3"},
                "id": "3",
            },
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {
            "Test": {
                "urls": ["http://127.0.0.1:80", "http://127.0.0.2:80", "http://127.0.0.3:80"],
                "pass_host_header": True,
            }
        },
        "middlewares": [],
    },
    {
        "desc": "two containers with two identical routers",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.http.routers.Router1.rule": "Host(`foo.com`)"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
                "id": "1",
            },
            {
                "name": "Test",
                "labels": {"traefik.http.routers.Router1.rule": "Host(`foo.com`)"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.2"},
                "id": "2",
            },
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Router1": {"service": "Test", "rule": "Host(`foo.com`)"}},
        "services": {
            "Test": {"urls": ["http://127.0.0.1:80", "http://127.0.0.2:80"], "pass_host_header": True}
        },
        "middlewares": [],
    },
    {
        "desc": "two containers with two identical router rules and different service names",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.http.routers.Router1.rule": "Host(`foo.com`)"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            },
            {
                "name": "Test",
                "labels": {"traefik.http.routers.Router1.rule": "Host(`foo.com`)"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.2"},
                "service_name": "Test2",
            },
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {
            "Test": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True},
            "Test2": {"urls": ["http://127.0.0.2:80"], "pass_host_header": True},
        },
        "middlewares": [],
    },
    {
        "desc": "one container with bad label",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.wrong.label": "42"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Test": {"service": "Test", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {"Test": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True}},
        "middlewares": [],
    },
    {
        "desc": "one container with label port",
        "containers": [
            {
                "name": "Test",
                "labels": {
                    "traefik.http.services.Service1.LoadBalancer.server.scheme": "h2c",
                    "traefik.http.services.Service1.LoadBalancer.server.port": "8080",
                },
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Test": {"service": "Service1", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {"Service1": {"urls": ["h2c://127.0.0.1:8080"], "pass_host_header": True}},
        "middlewares": [],
    },
    {
        "desc": "one container with label port on two services",
        "containers": [
            {
                "name": "Test",
                "labels": {
                    "traefik.http.services.Service1.LoadBalancer.server.port": "",
                    "traefik.http.services.Service2.LoadBalancer.server.port": "8080",
                },
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {
            "Service1": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True},
            "Service2": {"urls": ["http://127.0.0.1:8080"], "pass_host_header": True},
        },
        "middlewares": [],
    },
    {
        "desc": "one container with label url",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.http.services.Service1.LoadBalancer.server.url": "http://1.2.3.4:5678"},
                "ports": [(4567, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Test": {"service": "Service1", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {"Service1": {"urls": ["http://1.2.3.4:5678"], "pass_host_header": True}},
        "middlewares": [],
    },
    {
        "desc": "one container with label url and preserve path",
        "containers": [
            {
                "name": "Test",
                "labels": {
                    "traefik.http.services.Service1.LoadBalancer.server.url": "http://1.2.3.4:5678",
                    "traefik.http.services.Service1.LoadBalancer.server.preservepath": "true",
                },
                "ports": [(4567, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Test": {"service": "Service1", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {"Service1": {"urls": ["http://1.2.3.4:5678"], "pass_host_header": True}},
        "middlewares": [],
    },
    {
        "desc": "one container with label url and port",
        "containers": [
            {
                "name": "Test",
                "labels": {
                    "traefik.http.services.Service1.LoadBalancer.server.url": "http://1.2.3.4:5678",
                    "traefik.http.services.Service1.LoadBalancer.server.port": "1234",
                },
                "ports": [(4567, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {},
        "middlewares": [],
    },
    {
        "desc": "one container with label url and scheme",
        "containers": [
            {
                "name": "Test",
                "labels": {
                    "traefik.http.services.Service1.LoadBalancer.server.url": "http://1.2.3.4:5678",
                    "traefik.http.services.Service1.LoadBalancer.server.scheme": "https",
                },
                "ports": [(4567, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {},
        "middlewares": [],
    },
    {
        "desc": "one container without port",
        "containers": [{"name": "Test", "labels": {}, "ports": [], "networks": {"bridge": "127.0.0.1"}}],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {},
        "middlewares": [],
    },
    {
        "desc": "one container without port with middleware",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.http.middlewares.Middleware1.inflightreq.amount": "42"},
                "ports": [],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {},
        "middlewares": [],
    },
    {
        "desc": "one container with traefik.enable false",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.enable": "false"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {},
        "middlewares": [],
    },
    {
        "desc": "one unhealthy HTTP container",
        "containers": [{"name": "Test", "labels": {}, "ports": [], "networks": {}, "health": "unhealthy"}],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {},
        "middlewares": [],
    },
    {
        "desc": "one unhealthy HTTP container with allowEmptyServices",
        "containers": [{"name": "Test", "labels": {}, "ports": [], "networks": {}, "health": "unhealthy"}],
        "options": {
            "default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)",
            "allow_empty_services": True,
        },
        "routers": {"Test": {"service": "Test", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {"Test": {"urls": [], "pass_host_header": True}},
        "middlewares": [],
    },
    {
        "desc": "one unhealthy TCP container",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.tcp.routers.foo.rule": "HostSNI(`foo.bar`)"},
                "ports": [],
                "networks": {},
                "health": "unhealthy",
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {},
        "middlewares": [],
    },
    {
        "desc": "one unhealthy TCP container with allowEmptyServices",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.tcp.routers.foo.rule": "HostSNI(`foo.bar`)"},
                "ports": [],
                "networks": {},
                "health": "unhealthy",
            }
        ],
        "options": {
            "default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)",
            "allow_empty_services": True,
        },
        "routers": {},
        "services": {},
        "middlewares": [],
        "tcp_udp": True,
    },
    {
        "desc": "one unhealthy UDP container",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.udp.routers.foo": "true"},
                "ports": [],
                "networks": {},
                "health": "unhealthy",
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {},
        "middlewares": [],
    },
    {
        "desc": "one unhealthy UDP container with allowEmptyServices",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.udp.routers.foo": "true"},
                "ports": [],
                "networks": {},
                "health": "unhealthy",
            }
        ],
        "options": {
            "default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)",
            "allow_empty_services": True,
        },
        "routers": {},
        "services": {},
        "middlewares": [],
        "tcp_udp": True,
    },
    {
        "desc": "one container with non matching constraints",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.tags": "foo"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {
            "default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)",
            "constraints": 'Label("traefik.tags", "bar")',
        },
        "routers": {},
        "services": {},
        "middlewares": [],
    },
    {
        "desc": "one container with matching constraints",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.tags": "foo"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {
            "default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)",
            "constraints": 'Label("traefik.tags", "foo")',
        },
        "routers": {"Test": {"service": "Test", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {"Test": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True}},
        "middlewares": [],
    },
    {
        "desc": "Middlewares used in router",
        "containers": [
            {
                "name": "Test",
                "labels": {
                    "traefik.http.middlewares.Middleware1.basicauth.users": (
                        "test:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/,"
                        "test2:$apr1$d9hr9HBB$4HxwgUir3HP4EsggP/QNo0"
                    ),
                    "traefik.http.routers.Test.middlewares": "Middleware1",
                },
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {
            "Test": {"service": "Test", "rule": "Host(`Test.traefik.wtf`)", "middlewares": ["Middleware1"]}
        },
        "services": {"Test": {"urls": ["http://127.0.0.1:80"], "pass_host_header": True}},
        "middlewares": ["Middleware1"],
    },
    {
        "desc": "Middlewares used in TCP router",
        "containers": [
            {
                "name": "Test",
                "labels": {
                    "traefik.tcp.routers.Test.rule": "HostSNI(`foo.bar`)",
                    "traefik.tcp.middlewares.Middleware1.ipallowlist.sourcerange": "foobar, fiibar",
                    "traefik.tcp.routers.Test.middlewares": "Middleware1",
                },
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {},
        "middlewares": [],
        "tcp_udp": True,
    },
    {
        "desc": "tcp with label",
        "containers": [
            {
                "name": "Test",
                "labels": {
                    "traefik.tcp.routers.foo.rule": "HostSNI(`foo.bar`)",
                    "traefik.tcp.routers.foo.tls": "true",
                },
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {},
        "middlewares": [],
        "tcp_udp": True,
    },
    {
        "desc": "udp with label",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.udp.routers.foo.entrypoints": "mydns"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {},
        "middlewares": [],
        "tcp_udp": True,
    },
    {
        "desc": "tcp with label without rule",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.tcp.routers.foo.tls": "true"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {},
        "middlewares": [],
        "tcp_udp": True,
    },
    {
        "desc": "tcp with label and port",
        "containers": [
            {
                "name": "Test",
                "labels": {
                    "traefik.tcp.routers.foo.rule": "HostSNI(`foo.bar`)",
                    "traefik.tcp.routers.foo.tls.options": "foo",
                    "traefik.tcp.services.foo.loadbalancer.server.port": "8080",
                },
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {},
        "middlewares": [],
        "tcp_udp": True,
    },
    {
        "desc": "udp with label and port",
        "containers": [
            {
                "name": "Test",
                "labels": {
                    "traefik.udp.routers.foo.entrypoints": "mydns",
                    "traefik.udp.services.foo.loadbalancer.server.port": "8080",
                },
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {},
        "middlewares": [],
        "tcp_udp": True,
    },
    {
        "desc": "udp with label and port and http service",
        "containers": [
            {
                "name": "Test",
                "labels": {
                    "traefik.udp.routers.foo.entrypoints": "mydns",
                    "traefik.udp.services.foo.loadbalancer.server.port": "8080",
                    "traefik.http.services.Service1.loadbalancer.passhostheader": "true",
                },
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            },
            {
                "name": "Test",
                "labels": {
                    "traefik.udp.routers.foo.entrypoints": "mydns",
                    "traefik.udp.services.foo.loadbalancer.server.port": "8080",
                    "traefik.http.services.Service1.loadbalancer.passhostheader": "true",
                },
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.2"},
                "id": "2",
            },
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Test": {"service": "Service1", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {
            "Service1": {"urls": ["http://127.0.0.1:80", "http://127.0.0.2:80"], "pass_host_header": True}
        },
        "middlewares": [],
        "tcp_udp": True,
    },
    {
        "desc": "udp with label for tcp service",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.udp.services.foo.loadbalancer.server.port": "8080"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {},
        "middlewares": [],
        "tcp_udp": True,
    },
    {
        "desc": "tcp with label for tcp service, with termination delay",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.tcp.services.foo.loadbalancer.server.port": "8080"},
                "ports": [(80, "tcp", None, None)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {},
        "services": {},
        "middlewares": [],
        "tcp_udp": True,
    },
    {
        "desc": "useBindPortIP with LblPort |\tExtIp:ExtPort:LblPort => ExtIp:ExtPort",
        "containers": [
            {
                "name": "Test",
                "labels": {"traefik.http.services.Test.loadbalancer.server.port": "80"},
                "ports": [(79, "tcp", "192.168.0.1", 8080), (80, "tcp", "192.168.0.1", 8081)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)", "use_bind_port_ip": True},
        "routers": {"Test": {"service": "Test", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {"Test": {"urls": ["http://192.168.0.1:8081"], "pass_host_header": True}},
        "middlewares": [],
    },
    {
        "desc": "one container with default generated certificate labels",
        "containers": [
            {
                "name": "Test",
                "labels": {
                    "traefik.tls.stores.default.defaultgeneratedcert.resolver": "foobar",
                    "traefik.tls.stores.default.defaultgeneratedcert.domain.main": "foobar",
                    "traefik.tls.stores.default.defaultgeneratedcert.domain.sans": "foobar, fiibar",
                },
                "ports": [(79, "tcp", "192.168.0.1", 8080), (80, "tcp", "192.168.0.1", 8081)],
                "networks": {"bridge": "127.0.0.1"},
            }
        ],
        "options": {"default_rule": "Host(`{{ normalize .Name }}.traefik.wtf`)"},
        "routers": {"Test": {"service": "Test", "rule": "Host(`Test.traefik.wtf`)"}},
        "services": {"Test": {"urls": ["http://127.0.0.1:79"], "pass_host_header": True}},
        "middlewares": [],
        "tls_stores": True,
    },
]

# Where dockroute differs on purpose, and says so by name: the case's warning.
WARNED = {
    # Traefik proxies h2c:// as HTTP/2 without TLS; until dockroute speaks HTTP/2 to backends it proxies
    # HTTP/1.1 to the same address (its URL is http://) and says so
    "one container with label port": "scheme h2c is proxied as HTTP/1.1",
    # preservePath=true keeps the server URL's path in Traefik; dockroute sends the request's path only
    "one container with label url and preserve path": "server.preservePath: not supported",
}


def _container(spec: dict) -> ContainerInfo:
    return ContainerInfo(
        id=spec.get("id", spec["name"]),
        name=spec.get("service_name", spec["name"]),
        labels=spec["labels"],
        health=spec.get("health"),
        ports=tuple(PortBinding(port, proto, hip, hport) for port, proto, hip, hport in spec["ports"]),
        networks=spec["networks"],
    )


def _settings(options: dict) -> DockerSettings:
    return DockerSettings(**options)


def _http(cfg) -> tuple[dict, dict, list]:
    routers = {}
    for name, r in cfg.routers.items():
        x = {"service": r.service, "rule": r.rule}
        if r.middlewares:
            x["middlewares"] = list(r.middlewares)
        if r.entry_points:
            x["entry_points"] = list(r.entry_points)
        if r.tls is not None:
            x["tls"] = True
        routers[name] = x
    services = {
        name: {
            "urls": [s.url for s in svc.load_balancer.servers],
            "pass_host_header": svc.load_balancer.pass_host_header,
        }
        for name, svc in cfg.services.items()
        if svc.load_balancer is not None
    }
    return routers, services, sorted(cfg.middlewares)


def _l4(cfg) -> dict:
    """The tcp/udp sections as (router → service, service → server addresses), plus tcp middlewares."""
    out: dict = {}
    for proto, section in (("tcp", cfg.tcp), ("udp", cfg.udp)):
        routers = {n: r.service for n, r in section.routers.items()}
        services = {n: [s.address for s in v.load_balancer.servers] for n, v in section.services.items()}
        if routers or services:
            out[proto] = (routers, services)
    if cfg.tcp.middlewares:
        out["tcp middlewares"] = sorted(cfg.tcp.middlewares)
    return out


_TEST80 = {"Test": ["127.0.0.1:80"]}
_FOO8080 = {"foo": ["127.0.0.1:8080"]}
# From Traefik's pkg/provider/docker/config_test.go, the same cases' expected TCP and UDP configurations.
L4_EXPECTED = {
    "one unhealthy TCP container with allowEmptyServices": {"tcp": ({"foo": "Test"}, {"Test": []})},
    "one unhealthy UDP container with allowEmptyServices": {"udp": ({"foo": "Test"}, {"Test": []})},
    "Middlewares used in TCP router": {
        "tcp": ({"Test": "Test"}, _TEST80),
        "tcp middlewares": ["Middleware1"],
    },
    "tcp with label": {"tcp": ({"foo": "Test"}, _TEST80)},
    "udp with label": {"udp": ({"foo": "Test"}, _TEST80)},
    "tcp with label without rule": {"tcp": ({}, _TEST80)},
    "tcp with label and port": {"tcp": ({"foo": "foo"}, _FOO8080)},
    "udp with label and port": {"udp": ({"foo": "foo"}, _FOO8080)},
    "udp with label and port and http service": {
        "udp": ({"foo": "foo"}, {"foo": ["127.0.0.1:8080", "127.0.0.2:8080"]})
    },
    "udp with label for tcp service": {"udp": ({}, _FOO8080)},
    "tcp with label for tcp service, with termination delay": {"tcp": ({}, _FOO8080)},
}


@pytest.mark.parametrize("case", CASES, ids=[c["desc"] for c in CASES])
def test_traefik_docker_provider_case(case):
    cfg, records = build_docker_config(
        [_container(c) for c in case["containers"]], _settings(case["options"])
    )
    routers, services, middlewares = _http(cfg)
    expected_services = case["services"]
    if case["desc"] in WARNED:
        warning = WARNED[case["desc"]]
        assert any(warning in w for r in records.values() for w in r.warnings), records
        expected_services = {
            name: {**svc, "urls": [u.replace("h2c://", "http://", 1) for u in svc["urls"]]}
            for name, svc in expected_services.items()
        }
    assert routers == case["routers"]
    assert services == expected_services
    assert middlewares == case["middlewares"]
    if case.get("tcp_udp"):
        assert _l4(cfg) == L4_EXPECTED[case["desc"]]  # Traefik's expected tcp/udp sections, summarised
    if case.get("tls_stores"):
        assert any("tls.*" in w for r in records.values() for w in r.warnings)


# TestDynConfBuilder_getIPAddress_docker: providers.docker.network is "webnet"; ``label`` is the
# container's traefik.docker.network. (Its last case, a swarm node's IP for a host-mode container, is
# swarm mode, which dockroute does not read.)
IP_CASES = [
    ("one network, no network label", {"testnet": "10.11.12.13"}, "", None, "10.11.12.13"),
    ("one network, network label", {"testnet": "10.11.12.13"}, "", "testnet", "10.11.12.13"),
    ("one ipv6 network, network label", {"testnet": "fd00:1:2:3:4::"}, "", "testnet", "[fd00:1:2:3:4::]"),
    # an address per network: the list call's IPv4 one when the network has both
    ("two network ipv4 + ipv6, network label", {"testnet": "10.11.12.13"}, "", "testnet", "10.11.12.13"),
    (
        "two networks, network label",
        {"testnet": "10.11.12.13", "testnet2": "10.11.12.14"},
        "",
        "testnet2",
        "10.11.12.14",
    ),
    (
        "two networks, no network label, mode host",
        {"testnet": "10.11.12.13", "testnet2": "10.11.12.14"},
        "host",
        None,
        "127.0.0.1",
    ),
    (
        "two networks, no network label, mode host, use provider network",
        {"testnet": "10.11.12.13", "webnet": "10.11.12.14"},
        "host",
        None,
        "10.11.12.14",
    ),
    (
        "two networks, network label",
        {"testnet": "10.11.12.13", "webnet": "10.11.12.14"},
        "",
        "testnet",
        "10.11.12.13",
    ),
    ("no network, no network label, mode host", {}, "host", None, "127.0.0.1"),
]


@pytest.mark.parametrize(
    ("desc", "networks", "mode", "label", "host"), IP_CASES, ids=[c[0] for c in IP_CASES]
)
def test_traefik_ip_address_case(desc, networks, mode, label, host):
    labels = {"traefik.docker.network": label} if label else {}
    c = ContainerInfo(
        id="c",
        name="c",
        labels=labels,
        ports=(PortBinding(80),),
        networks=networks,
        network_mode=mode or "bridge",
    )
    cfg, _ = build_docker_config([c], DockerSettings(network="webnet"))
    assert [s.url for s in cfg.services["c"].load_balancer.servers] == [f"http://{host}:80"]


def test_an_ipv6_only_network_gives_its_global_address():
    from discover.docker_provider import container_from_list

    listed = {
        "Id": "x",
        "Names": ["/v6"],
        "NetworkSettings": {
            "Networks": {"testnet": {"IPAddress": "", "GlobalIPv6Address": "fd00:1:2:3:4::"}}
        },
    }
    assert container_from_list(listed).networks == {"testnet": "fd00:1:2:3:4::"}


# Traefik behaviours the issue lists as differences, now matched


def test_an_empty_port_label_falls_back_to_the_containers_port():
    c = ContainerInfo(
        id="c",
        name="c",
        labels={"traefik.http.services.c.loadbalancer.server.port": ""},
        ports=(PortBinding(8080),),
        networks={"n": "10.0.0.2"},
    )
    cfg, records = build_docker_config([c], DockerSettings())
    assert [s.url for s in cfg.services["c"].load_balancer.servers] == ["http://10.0.0.2:8080"]
    assert records["c"].routed


@pytest.mark.parametrize(
    "labels",
    [
        {"traefik.http.services.s.loadbalancer.server.scheme": "h2c"},
        {"traefik.http.services.s.loadbalancer.server.url": "h2c://10.0.0.9:9000"},
    ],
)
def test_h2c_is_accepted_and_said_to_be_proxied_as_http1(labels):
    c = ContainerInfo(id="c", name="c", labels=labels, ports=(PortBinding(9000),), networks={"n": "10.0.0.9"})
    cfg, records = build_docker_config([c], DockerSettings())
    assert [s.url for s in cfg.services["s"].load_balancer.servers] == ["http://10.0.0.9:9000"]
    assert records["c"].routed and cfg.routers["c"].service == "s"
    assert any("h2c is proxied as HTTP/1.1" in w for w in records["c"].warnings)


def test_a_default_rule_with_an_unknown_field_drops_the_router_and_keeps_the_service():
    """Traefik's "invalid rule" case above, plus a container with its own rule keeping its router."""
    a = ContainerInfo(id="a", name="a", ports=(PortBinding(80),), networks={"n": "10.0.0.2"})
    b = ContainerInfo(
        id="b",
        name="b",
        labels={"traefik.http.routers.b.rule": "Host(`b`)"},
        ports=(PortBinding(80),),
        networks={"n": "10.0.0.3"},
    )
    cfg, records = build_docker_config([a, b], DockerSettings(default_rule="Host(`{{ .Toto }}`)"))
    assert set(cfg.routers) == {"b"} and set(cfg.services) == {"a", "b"}
    assert "router a: default rule" in records["a"].reasons[0]
