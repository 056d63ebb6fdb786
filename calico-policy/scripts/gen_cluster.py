#!/usr/bin/env python3
"""Generates a large cluster for `calico policy connlist` timing (one JSON List document).

Usage: gen_cluster.py OUT.json [NAMESPACES] [WORKLOADS] [POLICIES] [SEED]  (see --help)
Defaults: 100 namespaces, 2000 Deployments (random app/tier labels, a named port each),
500 policies (half Kubernetes NetworkPolicies with pod/namespace peers and named ports,
half Calico NetworkPolicies with nets and namespace selectors).
"""
import argparse
import json
import random


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def parse_args():
    parser = argparse.ArgumentParser(
        description="Write a generated cluster (one JSON List document) for connlist timing.")
    parser.add_argument("out", metavar="OUT.json", help="file to write (created or replaced)")
    parser.add_argument("namespaces", nargs="?", type=positive, default=100,
                        help="number of namespaces (default 100)")
    parser.add_argument("workloads", nargs="?", type=positive, default=2000,
                        help="number of Deployments (default 2000)")
    parser.add_argument("policies", nargs="?", type=int, default=500,
                        help="number of policies, half Kubernetes and half Calico (default 500)")
    parser.add_argument("seed", nargs="?", type=int, default=1,
                        help="random seed (default 1)")
    args = parser.parse_args()
    if args.out.startswith("-"):
        parser.error(f"{args.out}: the output path must not start with '-'")
    return args


def main():
    args = parse_args()
    out, n_ns, n_w, n_p, seed = args.out, args.namespaces, args.workloads, args.policies, args.seed
    random.seed(seed)
    apps = [f"app{i}" for i in range(40)]
    tiers = ["frontend", "backend", "data", "infra"]
    items = []
    for n in range(n_ns):
        items.append({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": f"ns{n}", "labels": {"team": f"t{n % 10}", "env": random.choice(["prod", "dev"])}}})
    for w in range(n_w):
        labels = {"app": random.choice(apps), "tier": random.choice(tiers)}
        items.append({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": f"w{w}", "namespace": f"ns{w % n_ns}"},
                      "spec": {"selector": {"matchLabels": labels},
                               "template": {"metadata": {"labels": labels},
                                            "spec": {"containers": [{"name": "c", "image": "i",
                                                                     "ports": [{"name": "http", "containerPort": 8080}]}]}}}})
    for p in range(n_p):
        ns = f"ns{p % n_ns}"
        if p % 2 == 0:
            items.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                          "metadata": {"name": f"k{p}", "namespace": ns},
                          "spec": {"podSelector": {"matchLabels": {"tier": random.choice(tiers)}},
                                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": random.choice(apps)}}},
                                                         {"namespaceSelector": {"matchLabels": {"team": f"t{random.randrange(10)}"}}}],
                                                "ports": [{"port": "http"}, {"port": random.choice([80, 443, 5432])}]}]}})
        else:
            items.append({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
                          "metadata": {"name": f"c{p}", "namespace": ns},
                          "spec": {"order": random.randrange(2000), "selector": f"app == '{random.choice(apps)}'",
                                   "ingress": [{"action": random.choice(["Allow", "Deny"]), "protocol": "TCP",
                                                "source": {"selector": f"tier == '{random.choice(tiers)}'"},
                                                "destination": {"ports": [random.randrange(1, 65535)]}}],
                                   "egress": [{"action": "Allow", "protocol": "UDP",
                                               "destination": {"nets": [f"10.{random.randrange(256)}.0.0/16"], "ports": [53]}},
                                              {"action": "Allow",
                                               "destination": {"namespaceSelector": f"team == 't{random.randrange(10)}'"}}]}})
    with open(out, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)


if __name__ == "__main__":
    main()
