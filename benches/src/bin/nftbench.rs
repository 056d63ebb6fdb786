//! nftables load benchmark: one synthetic `table inet calico` with 2,000 policy
//! chains (10,000 policy rules), 500 named sets, tier and endpoint chains and verdict maps,
//! loaded (a) by `nft -f` of its text rendering and (b) by our one-batch netlink apply, each
//! into its own fresh network namespace; then (c) a one-policy change applied as a delta.
//!
//! Run as root: `cargo run --release -p calico-benches --bin nftbench [-- --runs N]`.
//! The namespaces (`nftbench-<pid>-a`, `-b`) are deleted on exit, panics included.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use calico_dataplane::nft::NftDataplane;
use calico_policy::nft::{
    AddrValue, BaseChain, Chain, ChainPolicy, Hook, IfnameMatch, IpFamily, Match, PortProto,
    PortValue, Rule, RuleVerdict, Ruleset, RulesetDelta, Set, SetElement, SetKey, Side, Statement,
    Verdict, VerdictMap, ct_state,
};

const POLICIES: usize = 2_000;
const RULES_PER_POLICY: usize = 5;
const ADDR_SETS: usize = 250;
const PORT_SETS: usize = 250;
const TIERS: usize = 200;
const ENDPOINTS: usize = 200;

fn verdict(v: Verdict) -> Option<RuleVerdict> {
    Some(RuleVerdict::Verdict(v))
}

fn policy_rules(p: usize, variant: usize) -> Vec<Rule> {
    let s4 = format!("s4-{:04}", p % ADDR_SETS);
    let ports = format!("ports-{:04}", p % PORT_SETS);
    let tcp = Match::L4proto {
        proto: 6,
        negate: false,
    };
    let v4 = |side, value, negate| Match::Addr {
        family: IpFamily::V4,
        side,
        value,
        negate,
    };
    let net = |a: usize, b: usize| {
        AddrValue::Net(
            format!("10.{}.{}.0/24", a % 250, b % 250)
                .parse()
                .unwrap_or_default(),
        )
    };
    vec![
        Rule {
            matches: vec![
                tcp.clone(),
                v4(Side::Src, AddrValue::Set(s4.clone()), false),
                Match::Port {
                    proto: PortProto::Tcp,
                    side: Side::Dst,
                    value: PortValue::Set(ports),
                    negate: false,
                },
            ],
            verdict: verdict(Verdict::Accept),
            ..Rule::default()
        },
        Rule {
            matches: vec![
                tcp,
                v4(Side::Src, net(p, variant), false),
                Match::Port {
                    proto: PortProto::Tcp,
                    side: Side::Dst,
                    value: PortValue::Single(8080),
                    negate: false,
                },
            ],
            verdict: verdict(Verdict::Accept),
            ..Rule::default()
        },
        Rule {
            matches: vec![
                v4(Side::Src, AddrValue::Set(s4), true),
                Match::L4proto {
                    proto: 17,
                    negate: false,
                },
            ],
            verdict: verdict(Verdict::Drop),
            ..Rule::default()
        },
        Rule {
            matches: vec![
                Match::L4proto {
                    proto: 1,
                    negate: false,
                },
                Match::IcmpType {
                    family: IpFamily::V4,
                    value: 8,
                    negate: false,
                },
            ],
            verdict: verdict(Verdict::Accept),
            ..Rule::default()
        },
        Rule {
            matches: vec![v4(Side::Dst, net(p + 7, p / 250), false)],
            statements: vec![Statement::MarkSet {
                and: u32::MAX,
                or: 0x0002_0000,
            }],
            verdict: verdict(Verdict::Return),
            ..Rule::default()
        },
    ]
}

/// The synthetic ruleset; `changed` alters one rule of one policy (the delta of (c)).
fn ruleset(changed: bool) -> Ruleset {
    let mut rs = Ruleset::default();
    for i in 0..ADDR_SETS {
        let elements: BTreeSet<SetElement> = (0..20)
            .map(|j| {
                SetElement::Net(
                    format!("10.{}.{}.0/26", i % 250, j * 4)
                        .parse()
                        .unwrap_or_default(),
                )
            })
            .collect();
        rs.sets.insert(
            format!("s4-{i:04}"),
            Set {
                key: SetKey::Ipv4Addr,
                interval: true,
                elements,
            },
        );
    }
    for i in 0..PORT_SETS {
        let base = 1000 + u16::try_from(i).unwrap_or(0) * 10;
        let elements = [
            SetElement::Port(80),
            SetElement::Port(443),
            SetElement::PortRange(base, base + 5),
        ]
        .into();
        rs.sets.insert(
            format!("ports-{i:04}"),
            Set {
                key: SetKey::InetService,
                interval: true,
                elements,
            },
        );
    }
    for p in 0..POLICIES {
        let variant = if changed && p == 1234 { 1 } else { 0 };
        let rules = policy_rules(p, variant);
        debug_assert_eq!(rules.len(), RULES_PER_POLICY);
        rs.chains
            .insert(format!("pol-i-{p:04}"), Chain { base: None, rules });
    }
    for t in 0..TIERS {
        let mut rules = vec![Rule {
            statements: vec![Statement::MarkSet {
                and: 0xfffd_ffff,
                or: 0,
            }],
            ..Rule::default()
        }];
        for k in 0..(POLICIES / TIERS) {
            rules.push(Rule {
                verdict: verdict(Verdict::Jump(format!(
                    "pol-i-{:04}",
                    t * (POLICIES / TIERS) + k
                ))),
                ..Rule::default()
            });
        }
        rules.push(Rule {
            verdict: verdict(Verdict::Drop),
            comment: Some("end of tier".into()),
            ..Rule::default()
        });
        rs.chains
            .insert(format!("tier-i-{t:04}"), Chain { base: None, rules });
    }
    let mut to_wl = VerdictMap::default();
    for e in 0..ENDPOINTS {
        let name = format!("ep-tw-cali{e:011}");
        to_wl
            .elements
            .insert(format!("cali{e:011}"), Verdict::Goto(name.clone()));
        let rules = vec![
            Rule {
                verdict: verdict(Verdict::Jump(format!("tier-i-{:04}", e % TIERS))),
                ..Rule::default()
            },
            Rule {
                verdict: verdict(Verdict::Drop),
                comment: Some("no profile matched".into()),
                ..Rule::default()
            },
        ];
        rs.chains.insert(name, Chain { base: None, rules });
    }
    rs.maps.insert("to-wl".into(), to_wl);
    let base = BaseChain {
        hook: Hook::Forward,
        priority: 6,
        policy: ChainPolicy::Accept,
    };
    let rules = vec![
        Rule {
            matches: vec![Match::CtState(ct_state::ESTABLISHED | ct_state::RELATED)],
            verdict: verdict(Verdict::Accept),
            ..Rule::default()
        },
        Rule {
            matches: vec![Match::CtState(ct_state::INVALID)],
            verdict: verdict(Verdict::Drop),
            ..Rule::default()
        },
        Rule {
            verdict: Some(RuleVerdict::Vmap {
                side: Side::Dst,
                map: "to-wl".into(),
            }),
            ..Rule::default()
        },
        Rule {
            matches: vec![Match::Oifname {
                name: IfnameMatch::Prefix("cali".into()),
                negate: false,
            }],
            verdict: verdict(Verdict::Drop),
            comment: Some("unknown workload interface".into()),
            ..Rule::default()
        },
    ];
    rs.chains.insert(
        "fwd-ingress".into(),
        Chain {
            base: Some(base),
            rules,
        },
    );
    rs
}

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn netns(tag: &str) -> Result<Netns, String> {
    let name = format!("nftbench-{}-{tag}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .map_err(|e| e.to_string())?
        .success();
    if ok {
        Ok(Netns(name))
    } else {
        Err(format!("ip netns add {name} failed"))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn listing() -> Result<String, String> {
    let out = Command::new("nft")
        .args(["list", "table", "inet", "calico"])
        .output()
        .map_err(|e| e.to_string())?;
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    Ok(lines.join("\n"))
}

/// Inner run (inside a fresh namespace): mode `nft` loads the text, mode `ours` the batch.
fn inner(mode: &str, text_file: &str) -> Result<(), String> {
    match mode {
        "nft" => {
            // bash's `times` prints the children's user and system CPU time after nft.
            let t = Instant::now();
            let out = Command::new("bash")
                .args(["-c", "nft -f \"$1\" && times", "bash", text_file])
                .output()
                .map_err(|e| e.to_string())?;
            let el = t.elapsed();
            if !out.status.success() {
                return Err(format!(
                    "nft -f failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let times = String::from_utf8_lossy(&out.stdout);
            let cpu: f64 = times
                .lines()
                .nth(1)
                .map(|l| l.split_whitespace().map(bash_time).sum())
                .unwrap_or(f64::NAN);
            println!("RESULT nft {:.3} {:.3}", ms(el), cpu);
            println!("LISTING {}", fnv(&listing()?));
        }
        _ => {
            let rs = ruleset(false);
            let t = Instant::now();
            let c0 = oncpu_ms();
            let mut dp = NftDataplane::new().map_err(|e| e.to_string())?;
            let st = dp.apply_ruleset(&rs).map_err(|e| e.to_string())?;
            let full = t.elapsed();
            let cpu = oncpu_ms() - c0;
            println!(
                "RESULT ours {:.3} {} {} {:.3}",
                ms(full),
                st.messages,
                st.bytes,
                cpu
            );
            println!("LISTING {}", fnv(&listing()?));
            let t = Instant::now();
            let again = dp.apply_ruleset(&rs).map_err(|e| e.to_string())?;
            println!("RESULT noop {:.3} {}", ms(t.elapsed()), again.messages);
            // (c) one policy changed, as a delta; back and forth to take a median.
            let changed = ruleset(true);
            let mut between = Vec::new();
            let mut apply = Vec::new();
            let mut apply_cpu = Vec::new();
            let mut msgs = 0;
            for i in 0..20 {
                let (from, to) = if i % 2 == 0 {
                    (&rs, &changed)
                } else {
                    (&changed, &rs)
                };
                let t = Instant::now();
                let d = RulesetDelta::between(from, to);
                between.push(ms(t.elapsed()));
                let t = Instant::now();
                let c0 = oncpu_ms();
                let s = dp.apply_delta(&d).map_err(|e| e.to_string())?;
                apply.push(ms(t.elapsed()));
                apply_cpu.push(oncpu_ms() - c0);
                msgs = s.messages;
            }
            println!(
                "RESULT delta {:.3} {:.3} {msgs} {:.3}",
                median(apply),
                median(between),
                median(apply_cpu)
            );
            let t = Instant::now();
            let s = dp.apply_ruleset(&changed).map_err(|e| e.to_string())?;
            println!("RESULT diffapply {:.3} {}", ms(t.elapsed()), s.messages);
            let d = dp.drift().map_err(|e| e.to_string())?;
            if !d.is_empty() {
                return Err(format!("drift after the runs: {d:?}"));
            }
        }
    }
    Ok(())
}

/// `0m1.234s` (bash `times`) in milliseconds.
fn bash_time(s: &str) -> f64 {
    let Some((m, rest)) = s.split_once('m') else {
        return f64::NAN;
    };
    let sec: f64 = rest.trim_end_matches('s').parse().unwrap_or(f64::NAN);
    m.parse::<f64>().unwrap_or(f64::NAN) * 60e3 + sec * 1e3
}

/// On-CPU time of this thread (user and kernel, including the kernel's processing of our
/// netlink messages, which runs in our sendmsg), from `/proc/thread-self/schedstat`.
fn oncpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|n| n.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |ns| ns / 1e6)
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn run_in(ns: &Netns, mode: &str, file: &str) -> Result<Vec<String>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(exe)
        .env("NFTBENCH_INNER", mode)
        .env("NFTBENCH_FILE", file)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{mode} run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

fn field(lines: &[String], key: &str, i: usize) -> Option<String> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|r| r.split_whitespace().nth(i))
        .map(str::to_string)
}

fn main() -> Result<(), String> {
    if let Ok(mode) = std::env::var("NFTBENCH_INNER") {
        return inner(&mode, &std::env::var("NFTBENCH_FILE").unwrap_or_default());
    }
    let runs: usize = std::env::args()
        .skip_while(|a| a != "--runs")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let rs = ruleset(false);
    let rules: usize = rs.chains.values().map(|c| c.rules.len()).sum();
    let file = std::env::temp_dir().join(format!("nftbench-{}.nft", std::process::id()));
    let file_s = file.to_string_lossy().to_string();
    std::fs::write(&file, rs.to_nft()).map_err(|e| e.to_string())?;
    println!(
        "ruleset: {} chains ({} policy chains), {} rules, {} sets, {} map elements",
        rs.chains.len(),
        POLICIES,
        rules,
        rs.sets.len(),
        rs.maps.values().map(|m| m.elements.len()).sum::<usize>()
    );
    let (mut a, mut b, mut c, mut cb, mut noop, mut diff) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut a_cpu, mut b_cpu, mut c_cpu) = (vec![], vec![], vec![]);
    let mut same = true;
    let mut msgs = String::new();
    for _ in 0..runs {
        let na = netns("a")?;
        let nb = netns("b")?;
        let la = run_in(&na, "nft", &file_s)?;
        let lb = run_in(&nb, "ours", &file_s)?;
        let num = |l: &[String], k: &str, i: usize| {
            field(l, k, i)
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        a.push(num(&la, "RESULT nft", 0));
        a_cpu.push(num(&la, "RESULT nft", 1));
        b_cpu.push(num(&lb, "RESULT ours", 3));
        c_cpu.push(num(&lb, "RESULT delta", 3));
        b.push(num(&lb, "RESULT ours", 0));
        noop.push(num(&lb, "RESULT noop", 0));
        c.push(num(&lb, "RESULT delta", 0));
        cb.push(num(&lb, "RESULT delta", 1));
        diff.push(num(&lb, "RESULT diffapply", 0));
        same &= field(&la, "LISTING", 0) == field(&lb, "LISTING", 0);
        msgs = format!(
            "batch {} messages, {} bytes; delta {} messages",
            field(&lb, "RESULT ours", 1).unwrap_or_default(),
            field(&lb, "RESULT ours", 2).unwrap_or_default(),
            field(&lb, "RESULT delta", 2).unwrap_or_default()
        );
    }
    let _ = std::fs::remove_file(&file);
    let (a, b) = (median(a), median(b));
    let (ac, bc) = (median(a_cpu), median(b_cpu));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "medians of {runs} runs, each in fresh network namespaces (load average {}):",
        load.split_whitespace().next().unwrap_or("?")
    );
    println!("                                            wall clock      CPU (user+kernel)");
    println!("  (a) nft -f of the text rendering:        {a:9.1} ms   {ac:9.1} ms");
    println!("  (b) our one-batch netlink apply:          {b:9.1} ms   {bc:9.1} ms   ({msgs})");
    println!(
        "      ratio (a)/(b):                        {:9.2}x     {:9.2}x",
        a / b,
        ac / bc
    );
    println!(
        "  (c) one-policy delta apply:               {:9.3} ms   {:9.3} ms   (RulesetDelta::between: {:.3} ms)",
        median(c),
        median(c_cpu),
        median(cb)
    );
    println!(
        "      apply_ruleset, same ruleset again:    {:9.3} ms   (equal: nothing sent)",
        median(noop)
    );
    println!(
        "      apply_ruleset, one policy changed:    {:9.3} ms   (between + delta)",
        median(diff)
    );
    println!("  listings of (a) and (b) identical:        {same}");
    if !same {
        return Err("the two namespaces list different rulesets".into());
    }
    Ok(())
}
