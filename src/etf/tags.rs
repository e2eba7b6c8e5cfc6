//! Tag bytes of the External Term Format (erts `external.h`), in one place.
//!
//! Every tag the BEAM can emit has a name here, including the ones we refuse
//! (distribution header, atom cache references, fragments, local terms and the
//! pre-R8 fun format), so that the decoder can say *which* unsupported thing it met
//! instead of "unknown tag".

/// First byte of every external term.
pub const VERSION: u8 = 131;

pub const NEW_FLOAT_EXT: u8 = 70;
pub const BIT_BINARY_EXT: u8 = 77;
pub const COMPRESSED: u8 = 80;
pub const NEW_PID_EXT: u8 = 88;
pub const NEW_PORT_EXT: u8 = 89;
pub const NEWER_REFERENCE_EXT: u8 = 90;
pub const SMALL_INTEGER_EXT: u8 = 97;
pub const INTEGER_EXT: u8 = 98;
pub const FLOAT_EXT: u8 = 99;
pub const ATOM_EXT: u8 = 100;
pub const REFERENCE_EXT: u8 = 101;
pub const PORT_EXT: u8 = 102;
pub const PID_EXT: u8 = 103;
pub const SMALL_TUPLE_EXT: u8 = 104;
pub const LARGE_TUPLE_EXT: u8 = 105;
pub const NIL_EXT: u8 = 106;
pub const STRING_EXT: u8 = 107;
pub const LIST_EXT: u8 = 108;
pub const BINARY_EXT: u8 = 109;
pub const SMALL_BIG_EXT: u8 = 110;
pub const LARGE_BIG_EXT: u8 = 111;
pub const NEW_FUN_EXT: u8 = 112;
pub const EXPORT_EXT: u8 = 113;
pub const NEW_REFERENCE_EXT: u8 = 114;
pub const SMALL_ATOM_EXT: u8 = 115;
pub const MAP_EXT: u8 = 116;
pub const ATOM_UTF8_EXT: u8 = 118;
pub const SMALL_ATOM_UTF8_EXT: u8 = 119;
pub const V4_PORT_EXT: u8 = 120;

// Tags we recognise only to reject them with a precise message.
pub const DIST_HEADER: u8 = 68;
pub const DIST_FRAG_HEADER: u8 = 69;
// (The fragment continuation header is also 70, which inside a term is NEW_FLOAT_EXT, so
// `131, 70` is an ordinary float and is not rejected.)
pub const ATOM_CACHE_REF: u8 = 82;
pub const FUN_EXT: u8 = 117;
pub const LOCAL_EXT: u8 = 121;

/// Length of the old `FLOAT_EXT` text field (`"%.20e"`, NUL padded).
pub const FLOAT_EXT_LEN: usize = 31;

/// The most numbers a reference may carry (`ERTS_MAX_REF_NUMBERS` in OTP 25:
/// `binary_to_term` rejects six).
pub const MAX_REF_NUMBERS: usize = 5;

/// The longest atom the BEAM accepts, in characters.
pub const MAX_ATOM_CHARS: usize = 255;

/// The largest port number OTP writes as `NEW_PORT_EXT` (`ERTS_MAX_V3_PORT_NUMBER`,
/// 28 bits); bigger ones go out as `V4_PORT_EXT` (checked against OTP 25's
/// `term_to_binary`).
pub const MAX_V3_PORT_NUMBER: u64 = (1 << 28) - 1;

/// Maps up to this size are "flatmaps" in the BEAM, written with sorted keys.
pub const MAX_FLATMAP_KEYS: usize = 32;
