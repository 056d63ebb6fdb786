//! Unit tests of the encoding (no kernel needed).

use super::batch::{KElem, kernel_elements};
use super::consts::*;
use super::expr::{Expr, KernelVerdict, Reg};
use super::objects::{Element, Set, datatype};
use super::wire::{self, MsgBuf};

fn ip_set(ranges: &[([u8; 4], [u8; 4])]) -> Set {
    let mut s = Set::new(datatype::IPADDR, 4, true);
    s.elements = ranges
        .iter()
        .map(|(a, b)| Element {
            key: a.to_vec(),
            key_end: (a != b).then(|| b.to_vec()),
            verdict: None,
        })
        .collect();
    s
}

fn keys(v: &[KElem]) -> Vec<(Vec<u8>, u32)> {
    v.iter().map(|e| (e.key.clone(), e.flags)).collect()
}

const END: u32 = NFT_SET_ELEM_INTERVAL_END;

#[test]
fn interval_encoding_matches_nft() {
    // nft --debug=netlink for { 10.0.0.0/8, 192.168.0.0/16 }:
    // 0.0.0.0 [end], 10.0.0.0, 11.0.0.0 [end], 192.168.0.0, 192.169.0.0 [end]
    let s = ip_set(&[
        ([192, 168, 0, 0], [192, 168, 255, 255]),
        ([10, 0, 0, 0], [10, 255, 255, 255]),
    ]);
    assert_eq!(
        keys(&kernel_elements(&s)),
        vec![
            (vec![0, 0, 0, 0], END),
            (vec![10, 0, 0, 0], 0),
            (vec![11, 0, 0, 0], END),
            (vec![192, 168, 0, 0], 0),
            (vec![192, 169, 0, 0], END),
        ]
    );
}

#[test]
fn interval_edges() {
    // Starting at zero: no leading end marker; ending at the top: no trailing one.
    let s = ip_set(&[
        ([0, 0, 0, 0], [0, 0, 0, 255]),
        ([255, 0, 0, 0], [255, 255, 255, 255]),
    ]);
    assert_eq!(
        keys(&kernel_elements(&s)),
        vec![
            (vec![0, 0, 0, 0], 0),
            (vec![0, 0, 1, 0], END),
            (vec![255, 0, 0, 0], 0)
        ]
    );
    // Adjacent ranges: an end marker and a start with the same key (as nft sends them);
    // overlapping ones merge; a single value.
    let s = ip_set(&[
        ([10, 0, 0, 0], [10, 0, 0, 9]),
        ([10, 0, 0, 10], [10, 0, 0, 20]),
        ([10, 0, 0, 15], [10, 0, 0, 30]),
        ([10, 0, 0, 40], [10, 0, 0, 40]),
    ]);
    assert_eq!(
        keys(&kernel_elements(&s)),
        vec![
            (vec![0, 0, 0, 0], END),
            (vec![10, 0, 0, 0], 0),
            (vec![10, 0, 0, 10], END),
            (vec![10, 0, 0, 10], 0),
            (vec![10, 0, 0, 31], END),
            (vec![10, 0, 0, 40], 0),
            (vec![10, 0, 0, 41], END),
        ]
    );
}

#[test]
fn concat_interval_uses_key_end() {
    let mut s = Set::new(datatype::IPADDR, 4, true);
    s.key_types = vec![datatype::IPADDR, datatype::INET_SERVICE];
    s.key_lens = vec![4, 2];
    s.elements = vec![Element {
        key: vec![1, 2, 3, 4, 0, 80, 0, 0],
        key_end: None,
        verdict: None,
    }];
    let k = kernel_elements(&s);
    assert_eq!(k.len(), 1);
    assert_eq!(
        k[0].key_end.as_deref(),
        Some(&[1, 2, 3, 4, 0, 80, 0, 0][..])
    );
    assert_eq!(s.key_len(), 8);
    assert_eq!(
        s.key_type(),
        (datatype::IPADDR << 6) | datatype::INET_SERVICE
    );
    assert_eq!(s.flags(), NFT_SET_INTERVAL | NFT_SET_CONCAT);
}

#[test]
fn attributes_round_trip_with_padding() {
    let mut b = MsgBuf::default();
    let m = b.begin_msg(0x0a06, NLM_F_REQUEST, 7, NFPROTO_INET, 0);
    b.attr_str(1, "abc"); // 4 + 4 bytes, no padding
    b.attr(2, &[1, 2, 3, 4, 5]); // 9 bytes, padded to 12
    let n = b.nest_begin(3);
    b.attr_u32(1, 0xdead_beef);
    assert!(b.nest_end(n));
    b.end_msg(m);
    assert_eq!(b.buf.len(), 16 + 4 + 8 + 12 + 12);
    let msgs = wire::messages(&b.buf);
    assert_eq!(msgs.len(), 1);
    assert_eq!((msgs[0].ty, msgs[0].seq), (0x0a06, 7));
    let attrs = wire::attrs(&msgs[0].payload[4..]);
    assert_eq!(attrs.len(), 3);
    assert_eq!(wire::attr_string(attrs[0].1), "abc");
    assert_eq!(attrs[1].1, &[1, 2, 3, 4, 5]);
    assert_eq!(attrs[2].0, 3, "nested flag is masked off");
    assert_eq!(
        wire::find(attrs[2].1, 1).and_then(wire::attr_be32),
        Some(0xdead_beef)
    );
}

#[test]
fn malformed_input_is_ignored_not_panicking() {
    assert!(wire::messages(&[1, 2, 3]).is_empty());
    assert!(wire::messages(&[255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_empty());
    assert!(wire::attrs(&[2, 0, 1, 0]).is_empty());
    assert!(wire::parse_udata(&[0, 9, 1]).is_empty());
    assert_eq!(KernelVerdict::decode(&[]), None);
}

#[test]
fn verdict_encoding_round_trips() {
    for v in [
        KernelVerdict::Accept,
        KernelVerdict::Drop,
        KernelVerdict::Return,
        KernelVerdict::Jump("c1".into()),
        KernelVerdict::Goto("x".into()),
    ] {
        let mut b = MsgBuf::default();
        v.encode(&mut b);
        let a = wire::attrs(&b.buf);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].0, NFTA_DATA_VERDICT);
        assert_eq!(KernelVerdict::decode(a[0].1), Some(v.clone()));
    }
    // The code is a big-endian signed verdict: jump = -3.
    let mut b = MsgBuf::default();
    KernelVerdict::Jump("c".into()).encode(&mut b);
    let inner = wire::attrs(&b.buf)[0].1;
    assert_eq!(
        wire::find(inner, NFTA_VERDICT_CODE),
        Some(&(-3i32).to_be_bytes()[..])
    );
}

#[test]
fn expression_names_and_registers() {
    let mut b = MsgBuf::default();
    Expr::Lookup {
        set: "m".into(),
        sreg: Reg::R1,
        dreg: Some(Reg::VERDICT),
        invert: false,
    }
    .encode(&mut b);
    let el = wire::attrs(&b.buf)[0].1;
    assert_eq!(
        wire::find(el, NFTA_EXPR_NAME)
            .map(wire::attr_string)
            .as_deref(),
        Some("lookup")
    );
    let data = wire::find(el, NFTA_EXPR_DATA).unwrap_or_default();
    assert_eq!(
        wire::find(data, NFTA_LOOKUP_DREG).and_then(wire::attr_be32),
        Some(0)
    );
    assert_eq!(
        wire::find(data, NFTA_LOOKUP_SREG).and_then(wire::attr_be32),
        Some(1)
    );
    assert_eq!(
        (Reg::word(0), Reg::word(1), Reg::word(2)),
        (Reg(1), Reg(9), Reg(10))
    );
}

#[test]
fn userdata_and_comments() {
    let c = wire::comment_value(&"é".repeat(100));
    assert!(c.len() <= 128 && c.ends_with(&[0]));
    assert!(
        std::str::from_utf8(&c[..c.len() - 1]).is_ok(),
        "cut at a char boundary"
    );
    let u = wire::udata(&[
        (UDATA_COMMENT, b"hi\0"),
        (UDATA_CALICO_DIGEST, &7u64.to_be_bytes()),
    ]);
    let p = wire::parse_udata(&u);
    assert_eq!(
        p,
        vec![
            (UDATA_COMMENT, &b"hi\0"[..]),
            (UDATA_CALICO_DIGEST, &7u64.to_be_bytes()[..])
        ]
    );
}

mod model {
    use super::super::expr::{CmpOp, Expr, MetaKey};
    use super::super::model::{element, rule_exprs};
    use calico_nft as m;

    fn count_nfproto(e: &[Expr]) -> usize {
        e.iter()
            .filter(|x| {
                matches!(
                    x,
                    Expr::Meta {
                        key: MetaKey::NfProto,
                        ..
                    }
                )
            })
            .count()
    }

    #[test]
    fn address_dependency_once_per_family() {
        let addr = |side, net: &str| m::Match::Addr {
            family: m::IpFamily::V4,
            side,
            value: m::AddrValue::Net(net.parse().unwrap_or_default()),
            negate: false,
        };
        let r = m::Rule {
            matches: vec![
                addr(m::Side::Src, "10.0.0.0/8"),
                addr(m::Side::Dst, "10.1.0.0/16"),
            ],
            ..Default::default()
        };
        assert_eq!(count_nfproto(&rule_exprs(&r)), 1);
        let r = m::Rule {
            matches: vec![
                m::Match::Nfproto(m::IpFamily::V4),
                addr(m::Side::Src, "10.0.0.0/8"),
            ],
            ..Default::default()
        };
        assert_eq!(count_nfproto(&rule_exprs(&r)), 1);
    }

    #[test]
    fn mark_set_folds_and_or() {
        let r = m::Rule {
            statements: vec![m::Statement::MarkSet {
                and: u32::MAX,
                or: 0x2_0000,
            }],
            ..Default::default()
        };
        let e = rule_exprs(&r);
        assert!(e.iter().any(|x| matches!(x, Expr::Bitwise { mask, xor, .. }
            if *mask == 0xfffd_ffffu32.to_ne_bytes().to_vec() && *xor == 0x2_0000u32.to_ne_bytes().to_vec())));
        assert!(matches!(
            e.last(),
            Some(Expr::MetaSet {
                key: MetaKey::Mark,
                ..
            })
        ));
    }

    #[test]
    fn port_match_adds_missing_l4proto() {
        let port = m::Match::Port {
            proto: m::PortProto::Udp,
            side: m::Side::Dst,
            value: m::PortValue::Single(53),
            negate: false,
        };
        let e = rule_exprs(&m::Rule {
            matches: vec![port.clone()],
            ..Default::default()
        });
        assert!(matches!(&e[1], Expr::Cmp { op: CmpOp::Eq, data, .. } if *data == vec![17]));
        let with = rule_exprs(&m::Rule {
            matches: vec![
                m::Match::L4proto {
                    proto: 17,
                    negate: false,
                },
                port,
            ],
            ..Default::default()
        });
        assert_eq!(with.len(), e.len(), "no second l4proto dependency");
    }

    #[test]
    fn elements() {
        let e = element(&m::SetElement::Net(
            "10.1.0.0/16".parse().unwrap_or_default(),
        ));
        assert_eq!(
            (e.key, e.key_end),
            (vec![10, 1, 0, 0], Some(vec![10, 1, 255, 255]))
        );
        let e = element(&m::SetElement::AddrProtoPort(
            "10.0.0.1".parse().unwrap_or(std::net::IpAddr::from([0; 4])),
            6,
            8080,
        ));
        assert_eq!(e.key, vec![10, 0, 0, 1, 6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
    }
}
