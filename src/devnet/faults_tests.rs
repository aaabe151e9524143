use super::*;

#[test]
fn behaviours_round_trip() {
    for s in [
        "healthy",
        "lagging:3",
        "moves-on:2",
        "fork",
        "fork:6",
        "http-status:503",
        "garbage",
        "oversized",
        "slow-drip",
        "slow-drip:250",
        "accept-hang",
        "half-close",
        "reset",
        "blackhole-connect",
        "flap",
        "flap:2",
        "legacy",
        "no-store",
        "block-mismatch",
        "state-wrong-slot",
        "trailing-bytes",
        "trailing-bytes:9",
        "no-block-route",
    ] {
        let b: Behaviour = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(b.to_string(), s);
    }
    assert_eq!("lagging".parse(), Ok(Behaviour::Lagging(3)));
}

#[test]
fn bad_behaviours_are_named() {
    for (s, needle) in [
        ("sleepy", "unknown behaviour"),
        ("http-status", "needs a parameter"),
        ("http-status:42", "not in 300..=599"),
        ("lagging:x", "not a valid parameter"),
        ("healthy:1", "takes no parameter"),
        ("trailing-bytes:0", "not in 1..=1048576"),
    ] {
        let e = s.parse::<Behaviour>().expect_err(s);
        assert!(e.contains(needle), "{s}: {e}");
    }
}

/// A chain whose head stays at slot 20 for the test's duration.
fn chain_at_slot_20() -> Chain {
    Chain::new(super::super::chain::ChainParams {
        chain_id: 1,
        validators: 4,
        slot: Duration::from_secs(3600),
        start_slot: 20,
        genesis_time: 0,
        justification_roots: 0,
    })
}

#[test]
fn routes_and_legacy() {
    let chain = chain_at_slot_20();
    let status = |b: &Behaviour, path: &str| match reply(b, Route::from_path(path), &chain) {
        Reply::Full { status, .. } => status,
        other => panic!("{other:?}"),
    };
    assert_eq!(status(&Behaviour::Legacy, paths::FORK_CHOICE), 404);
    assert_eq!(status(&Behaviour::Legacy, paths::JUSTIFIED), 404);
    assert_eq!(status(&Behaviour::Legacy, paths::STATE_FINALIZED), 200);
    assert_eq!(status(&Behaviour::Healthy, "/lean/v0/nope"), 404);
    assert_eq!(status(&Behaviour::NoStore, paths::HEALTH), 200);
    assert_eq!(status(&Behaviour::NoStore, paths::FORK_CHOICE), 503);
    assert_eq!(status(&Behaviour::HttpStatus(502), paths::HEALTH), 502);
}

#[test]
fn pair_faults_are_refused_by_verification() {
    use crate::served::verify::verify_pair;
    let chain = chain_at_slot_20();
    let body = |b: &Behaviour, route: Route| match reply(b, route, &chain) {
        Reply::Full {
            status: 200, body, ..
        } => body,
        other => panic!("{b}: {other:?}"),
    };
    let fin = chain.snapshot(Branch::Main, 20).finalized;
    let pair = |b: &Behaviour| {
        verify_pair(
            fin.slot,
            fin.root,
            body(b, Route::BlockFinalized),
            body(b, Route::StateFinalized),
        )
    };
    let good = pair(&Behaviour::Healthy).expect("healthy pair verifies");
    let kind = |b: Behaviour| pair(&b).map(|_| ()).unwrap_err().kind();
    assert_eq!(kind(Behaviour::BlockMismatch), "block_root_mismatch");
    assert_eq!(kind(Behaviour::StateWrongSlot), "state_slot_mismatch");
    assert_eq!(kind(Behaviour::TrailingBytes(4)), "state_decode");
    // On the block, trailing bytes are proof bytes: dropped, never served.
    let block_only = verify_pair(
        fin.slot,
        fin.root,
        body(&Behaviour::TrailingBytes(4), Route::BlockFinalized),
        good.state.clone(),
    )
    .expect("block root still proven");
    assert_eq!(block_only.block, good.block);
    let b = Behaviour::NoBlockRoute;
    assert!(matches!(
        reply(&b, Route::BlockFinalized, &chain),
        Reply::Full { status: 404, .. }
    ));
    assert_eq!(body(&b, Route::StateFinalized), good.state);
}
