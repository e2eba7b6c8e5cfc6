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
/// * never `PUBLISHED` (we are a hidden node);
/// * never `DIST_HDR_ATOM_CACHE` or `FRAGMENTS` (not implemented: OTP then sends every
///   message whole, in one pass-through frame), nor `SPAWN` (we do not serve
///   `SPAWN_REQUEST`), nor `ALIAS` or `EXIT_PAYLOAD`.
pub fn advertised() -> DistributionFlags {
    let f = DistributionFlags::default()
        | DistributionFlags::DIST_MONITOR
        | DistributionFlags::DIST_MONITOR_NAME;
    let bits = (f.bits() & !ERL_DIST_WRONG_DIGEST_BIT) | MANDATORY_25_DIGEST;
    let f = DistributionFlags::from_bits_truncate(bits);
    let never = DistributionFlags::PUBLISHED
        | DistributionFlags::DIST_HDR_ATOM_CACHE
        | DistributionFlags::FRAGMENTS
        | DistributionFlags::SPAWN
        | DistributionFlags::ALIAS
        | DistributionFlags::EXIT_PAYLOAD;
    DistributionFlags::from_bits_truncate(f.bits() & !never.bits())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_bit_is_26_not_36() {
        let bits = advertised().bits();
        assert_ne!(bits & MANDATORY_25_DIGEST, 0);
        assert_eq!(bits & ERL_DIST_WRONG_DIGEST_BIT, 0);
    }

    #[test]
    fn no_unimplemented_features() {
        let f = advertised();
        for bad in [
            DistributionFlags::PUBLISHED,
            DistributionFlags::DIST_HDR_ATOM_CACHE,
            DistributionFlags::FRAGMENTS,
            DistributionFlags::SPAWN,
            DistributionFlags::ALIAS,
        ] {
            assert!(!f.contains(bad), "{bad:?} must not be advertised");
        }
        assert!(f.contains(DistributionFlags::DIST_MONITOR | DistributionFlags::DIST_MONITOR_NAME));
    }
}
