#!/usr/bin/env bash
# The pure crates must never depend on an async runtime, netlink, nftables or etcd.
set -euo pipefail
cd "$(dirname "$0")/.."
forbidden=(tokio rtnetlink nftnl etcd-client async-std)
pure=(calico-model calico-nft calico-datastore calico-ipam calico-policy calico-route)
status=0
checked=()
members=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(" ".join(p["name"] for p in json.load(sys.stdin)["packages"]))')
for crate in "${pure[@]}"; do
  case " $members " in *" $crate "*) ;; *) continue ;; esac
  checked+=("$crate")
  for dep in "${forbidden[@]}"; do
    # `cargo tree -i` can exit 0 with no output (the package is in the lock file only
    # through other edges), so a dependency is what it prints.
    out=$(cargo tree -p "$crate" -e normal -i "$dep" 2>/dev/null || true)
    if [ -n "$out" ]; then
      echo "layering: $crate depends on $dep" >&2
      status=1
    fi
  done
done
# calico-nft is the seam between the policy renderer and the kernel encoder: it depends on no
# other crate of the workspace, and calico-dataplane reaches the ruleset model through it only.
case " $members " in *" calico-nft "*)
  own=$(cargo tree -p calico-nft -e normal --prefix none 2>/dev/null | awk '{print $1}' | grep '^calico-' | grep -vx calico-nft || true)
  if [ -n "$own" ]; then
    echo "layering: calico-nft depends on $(echo "$own" | sort -u | tr '\n' ' ')" >&2
    status=1
  fi
  if [ -n "$(cargo tree -p calico-dataplane -e normal -i calico-policy 2>/dev/null || true)" ]; then
    echo "layering: calico-dataplane depends on calico-policy (use calico-nft)" >&2
    status=1
  fi
  ;;
esac
# calico-ipam works on any Store: it must not force calico-datastore's file backend (redb) on
# its users; the programs that open `file:` stores enable calico-datastore's `file` feature.
if [ -n "$(cargo tree -p calico-ipam -e normal -i redb 2>/dev/null || true)" ]; then
  echo "layering: calico-ipam depends on redb (use calico-datastore without its file feature)" >&2
  status=1
fi
[ "$status" -eq 0 ] && echo "layering: ok (${checked[*]} free of ${forbidden[*]})"
exit "$status"
