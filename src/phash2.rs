//! `erlang:phash2/1,2`, bit for bit (issue 3). Placeholder with the atom hash only, until
//! the full implementation lands.

use eetf::Term;

#[derive(Debug)]
pub struct Phash2Error(pub String);

/// ERTS's `atom_hash` over an atom's text (the hashpjw variant with the Latin-1 fold).
pub fn atom_hash(name: &str) -> u32 {
    let mut h: u32 = 0;
    let mut feed = |v: u32| {
        h = (h << 4).wrapping_add(v);
        let g = h & 0xF000_0000;
        if g != 0 {
            h ^= g >> 24;
            h ^= g;
        }
    };
    for ch in name.chars() {
        let cp = ch as u32;
        if cp < 256 {
            feed(cp);
        } else {
            let mut buf = [0u8; 4];
            for b in ch.encode_utf8(&mut buf).bytes() {
                feed(b as u32);
            }
        }
    }
    h
}

/// `rexi_server_<erlang:phash2(Node)>`.
pub fn server_id(node: &str) -> String {
    format!("rexi_server_{}", atom_hash(node) & 0x07FF_FFFF)
}

pub fn phash2(_t: &Term) -> Result<u32, Phash2Error> {
    Err(Phash2Error("not yet implemented".into()))
}

pub fn phash2_range(_t: &Term, _range: u64) -> Result<u32, Phash2Error> {
    Err(Phash2Error("not yet implemented".into()))
}
