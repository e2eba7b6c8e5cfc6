//! The distribution flags rexi-node advertises, and why each is (or is not) there.

use erl_dist::DistributionFlags;

/// `DFLAG_MANDATORY_25_DIGEST` as OTP's `dist.hrl` defines it. erl_dist 0.8 defines the
/// constant as bit 36 (which newer OTP uses for `DFLAG_LOCAL_EXT`); the real bit is 26.
pub const MANDATORY_25_DIGEST: u64 = 0x0400_0000;

/// The bit erl_dist wrongly calls `MANDATORY_25_DIGEST`; we clear it.
const ERL_DIST_WRONG_DIGEST_BIT: u64 = 1 << 36;

/// The flags we offer in every handshake:
///
/// * the OTP 25/26 mandatory set (erl_dist's `default()`), with the digest bit corrected;
/// * `DIST_MONITOR` and `DIST_MONITOR_NAME`: without them OTP never sends `MONITOR_P`, so a
///   monitor on an unknown name would never report `noproc` (we answer every `MONITOR_P`);
/// * `SPAWN`: we serve `SPAWN_REQUEST` (erpc, rpc, `spawn/4`; see [`super::spawn`]);
///   without it OTP 25's `erpc:call` and `rpc:call` fail with `notsup` at once;
/// * `PUBLISHED` only when `visible`: a hidden node stays out of the BEAM's `nodes()`;
/// * never `DIST_HDR_ATOM_CACHE` or `FRAGMENTS` (not implemented: OTP then sends every
///   message whole, in one pass-through frame), nor `ALIAS` or `EXIT_PAYLOAD`.
pub fn advertised(visible: bool) -> DistributionFlags {
    let f = DistributionFlags::default()
        | DistributionFlags::DIST_MONITOR
        | DistributionFlags::DIST_MONITOR_NAME
        | DistributionFlags::SPAWN;
    let bits = (f.bits() & !ERL_DIST_WRONG_DIGEST_BIT) | MANDATORY_25_DIGEST;
    let f = DistributionFlags::from_bits_truncate(bits);
    let never = DistributionFlags::PUBLISHED
        | DistributionFlags::DIST_HDR_ATOM_CACHE
        | DistributionFlags::FRAGMENTS
        | DistributionFlags::ALIAS
        | DistributionFlags::EXIT_PAYLOAD;
    let f = DistributionFlags::from_bits_truncate(f.bits() & !never.bits());
    if visible {
        f | DistributionFlags::PUBLISHED
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_bit_is_26_not_36() {
        let bits = advertised(false).bits();
        assert_ne!(bits & MANDATORY_25_DIGEST, 0);
        assert_eq!(bits & ERL_DIST_WRONG_DIGEST_BIT, 0);
    }

    #[test]
    fn no_unimplemented_features() {
        for visible in [false, true] {
            let f = advertised(visible);
            for bad in [
                DistributionFlags::DIST_HDR_ATOM_CACHE,
                DistributionFlags::FRAGMENTS,
                DistributionFlags::ALIAS,
            ] {
                assert!(!f.contains(bad), "{bad:?} must not be advertised");
            }
            assert!(f.contains(
                DistributionFlags::DIST_MONITOR
                    | DistributionFlags::DIST_MONITOR_NAME
                    | DistributionFlags::SPAWN
            ));
            assert_eq!(f.contains(DistributionFlags::PUBLISHED), visible);
        }
    }
}
