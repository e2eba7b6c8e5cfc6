//! The Erlang term text syntax: parsing (checked against the BEAM's own parser through
//! phash2), printing, round trips, error columns and depth.

use base64::Engine;
use eetf::{BitBinary, ByteList, FixInteger, List, Term};
use rexi_node::etf::{self, Limits};
use rexi_node::phash2::{make_hash2, phash2};
use rexi_node::term::{float_text, parse, print, print_truncated};

mod support;
use support::on_big_stack;

/// Texts parsed by `erl_parse:parse_term/1` on OTP 25, with `phash2(T)` and
/// `phash2(T, 2^32)` of the result: if our parser builds a different term, the hash shows it.
const BEAM_PARSED: &[(&str, u32, u32)] = &[
    ("<<1,2:3>>", 22968450, 2841540738),
    ("<<-1>>", 78681268, 1689294004),
    ("<<256:16/little>>", 50782954, 4211532522),
    (r#"<<"héllo"/utf8>>"#, 65360587, 3823456971),
    ("<<1.5/float>>", 94579965, 3584240893),
    ("<<1.5:32/float-little>>", 129127697, 4289877265),
    ("<<1:100>>", 24746949, 2306448325),
    ("<<1:1,2:2,3:3>>", 35342066, 35342066),
    (r#"<<"abc":16>>"#, 56736371, 2875308659),
    ("<<$a/utf16-little,16#1F600/utf32>>", 65437949, 3018227965),
    (r#"<<"ab",1:3>>"#, 69996529, 4230746097),
    ("[1|[2|[3]]]", 25788620, 4186538188),
    (r#"[1,2|"abc"]"#, 114629317, 517282501),
    (r#""日本""#, 14330518, 2698685078),
    ("'hôte@ñu'", 129671157, 129671157),
    (r#"'a\'b\\c\x{41}\101\^A'"#, 92435233, 226652961),
    ("16#FFFFFFFFFFFFFFFFFF", 128072543, 1738685279),
    ("-2#101", 115015680, 517668864),
    ("1_000_000", 109607396, 3599268324),
    (r#"$\x{1F600}"#, 59686147, 1670298883),
    ("#{a => 1, a => 2}", 111268746, 1050792842),
    ("fun lists:map/2", 34981515, 840287883),
    ("fun 'a b':'c d'/0", 84558503, 487211687),
    ("{1.5e10,-0.0,1.0e-300}", 133563827, 536217011),
    (r#""abc" "def""#, 82973348, 3438416548),
    ("[$a,$b|c]", 27455995, 2711810555),
];

#[test]
fn parses_like_the_beam() {
    for &(text, want, want_raw) in BEAM_PARSED {
        let t = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(phash2(&t).unwrap(), want, "phash2({text})");
        assert_eq!(make_hash2(&t).unwrap(), want_raw, "phash2({text}, 2^32)");
        // Printing and parsing again gives the same term.
        let again = parse(&print(&t)).unwrap_or_else(|e| panic!("{text} -> {}: {e}", print(&t)));
        assert_eq!(
            make_hash2(&again).unwrap(),
            want_raw,
            "{text} -> {}",
            print(&t)
        );
    }
}

#[test]
fn shapes_follow_eetf_conventions() {
    assert_eq!(
        parse(r#""abc""#).unwrap(),
        Term::from(ByteList::from("abc"))
    );
    assert_eq!(parse(r#""""#).unwrap(), Term::from(List::nil()));
    assert_eq!(
        parse(r#""aĀ""#).unwrap(),
        Term::from(List::from(vec![
            Term::from(FixInteger::from(97)),
            Term::from(FixInteger::from(256))
        ]))
    );
    // Trailing bits are right-aligned in the last byte, as eetf's decoder leaves them.
    assert_eq!(
        parse("<<1,2:3>>").unwrap(),
        Term::from(BitBinary::from((vec![1, 2], 3)))
    );
    assert_eq!(
        parse("<<5:3>>").unwrap(),
        Term::from(BitBinary::from((vec![5], 3)))
    );
    assert_eq!(
        parse("<<1,2>>").unwrap(),
        Term::from(eetf::Binary::from(vec![1, 2]))
    );
    match parse("-0.0").unwrap() {
        Term::Float(f) => assert!(f.value == 0.0 && f.value.is_sign_negative()),
        other => panic!("{other:?}"),
    }
    assert_eq!(parse("16#ff").unwrap(), parse("255").unwrap());
    assert_eq!(parse("{a, b}.").unwrap(), parse("{a,b}").unwrap());
    assert_eq!(
        parse("  % a comment\n [a] % another\n").unwrap(),
        parse("[a]").unwrap()
    );
}

#[test]
fn prints_like_erlang() {
    let cases = [
        ("a", "a"),
        ("'hello world'", "'hello world'"),
        ("'end'", "'end'"),
        ("'A'", "'A'"),
        ("hôte", "hôte"),
        ("'a@127.0.0.1'", "'a@127.0.0.1'"),
        ("'\\n'", "'\\n'"),
        ("{a,[1,2|x],#{}}", "{a,[1,2|x],#{}}"),
        ("#{b => 1, a => 2, 1 => x}", "#{1 => x,a => 2,b => 1}"),
        ("\"hi\\n\"", "\"hi\\n\""),
        ("[1,2,300]", "[1,2,300]"),
        ("[104,105]", "\"hi\""),
        ("<<\"abc\">>", "<<\"abc\">>"),
        ("<<1,2,3>>", "<<1,2,3>>"),
        ("<<1,2:3>>", "<<1,2:3>>"),
        ("<<\"ab\",1:3>>", "<<97,98,1:3>>"),
        ("<<\"héllo\"/utf8>>", "<<\"héllo\"/utf8>>"),
        ("<<>>", "<<>>"),
        ("12345678901234567890", "12345678901234567890"),
        ("fun lists:map/2", "fun lists:map/2"),
        ("[]", "[]"),
        ("{}", "{}"),
    ];
    for (text, want) in cases {
        let t = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(print(&t), want, "print(parse({text}))");
    }
}

/// A list prints as a string exactly when `io_lib:format("~p", [L])` (and `~tp`) on OTP 25
/// prints it as one: every element a printable Latin-1 character. Binaries follow `~tp`.
/// Every expectation below is what OTP 25's `io_lib:format("~tp", [T])` returned.
#[test]
fn strings_print_like_erlang_p() {
    let latin1_upper: Vec<String> = (128..=255).map(|c: u32| c.to_string()).collect();
    let latin1_upper = format!("[{}]", latin1_upper.join(","));
    let cases: Vec<(&str, &str)> = vec![
        ("[5000]", "[5000]"),
        ("[65,66]", "\"AB\""),
        ("[10,65]", "\"\\nA\""),
        ("[]", "[]"),
        (&latin1_upper, &latin1_upper),
        ("[7]", "[7]"),
        ("[8,9,10,11,12,13,27]", "\"\\b\\t\\n\\v\\f\\r\\e\""),
        ("[0]", "[0]"),
        ("[127]", "[127]"),
        ("[159]", "[159]"),
        ("[160,255]", "\"\u{A0}\u{FF}\""),
        ("[65,5000]", "[65,5000]"),
        ("\"日本\"", "[26085,26412]"),
        ("[[65,66]]", "[\"AB\"]"),
        ("{[65],[7]}", "{\"A\",[7]}"),
        ("[34,92]", "\"\\\"\\\\\""),
        ("[$a,$b|c]", "[97,98|c]"),
        ("<<233>>", "<<\"é\">>"),
        ("<<195,169>>", "<<\"é\"/utf8>>"),
        ("<<\"日本\"/utf8>>", "<<230,151,165,230,156,172>>"),
        ("<<233,10>>", "<<\"é\\n\">>"),
        ("<<128>>", "<<128>>"),
        ("<<97,7>>", "<<97,7>>"),
        ("<<\"a\\\"b\">>", "<<\"a\\\"b\">>"),
        ("<<1:3>>", "<<1:3>>"),
        ("<<233,1:3>>", "<<233,1:3>>"),
    ];
    for (text, want) in cases {
        let t = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(print(&t), want, "print(parse({text}))");
        // What is printed reads back as the same term ("AB" is a ByteList, [65,66] a
        // List: different eetf shapes of one Erlang term, so compare by hash).
        let again = parse(want).unwrap_or_else(|e| panic!("{want}: {e}"));
        assert_eq!(
            make_hash2(&again).unwrap(),
            make_hash2(&t).unwrap(),
            "{want}"
        );
    }
}

/// The same rule, asked of a real `erl`: for each list, our text is exactly what
/// `io_lib:format("~p", [L])` gives (and `~tp`, the same for lists under the default
/// `+pc latin1`); for each binary, what `~tp` gives.
#[test]
fn lists_print_like_a_real_erl_p() {
    let lists = [
        "[5000]",
        "[65,66]",
        "[]",
        "[10,65]",
        "[255]",
        "[256]",
        "\"é\"",
        "[0]",
        "[7]",
        "[31]",
        "[127]",
        "[128]",
        "[159]",
        "[160]",
        "[8,9,10,11,12,13,27]",
        "[65,5000]",
        "[-1]",
        "[1114111]",
        "\"日本\"",
        "[[65,66],[5000]]",
        "{[65],[7],[]}",
        "[34,92,39]",
        "[$a,$b|c]",
        "[65|66]",
        "[a,65]",
        "[65.0]",
    ];
    let binaries = [
        "<<233>>",
        "<<195,169>>",
        "<<\"日本\"/utf8>>",
        "<<128>>",
        "<<1:3>>",
        "<<\"a\\\"b\">>",
    ];
    let dir = std::env::temp_dir().join(format!("rn_print_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let input = dir.join("terms.txt");
    let all: Vec<&str> = lists.iter().chain(binaries.iter()).copied().collect();
    std::fs::write(&input, all.join("\n") + "\n").expect("write terms");
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support/print_oracle.escript");
    let out = std::process::Command::new("escript")
        .arg(&script)
        .arg(&input)
        .output()
        .expect("escript must be installed");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let answers: Vec<&str> = text.lines().collect();
    assert_eq!(answers.len(), all.len(), "{text}");
    // "[34,65] [34,65]": two lists of code points.
    let decode = |s: &str| -> String {
        s.trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .filter(|x| !x.is_empty())
            .map(|x| char::from_u32(x.parse().expect("code point")).expect("char"))
            .collect()
    };
    for (i, (text, answer)) in all.iter().zip(answers).enumerate() {
        let (p, tp) = answer.split_once(' ').expect("two lists");
        let (p, tp) = (decode(p), decode(tp));
        let ours = print(&parse(text).unwrap_or_else(|e| panic!("{text}: {e}")));
        if i < lists.len() {
            assert_eq!(ours, p, "{text}: ~p");
        }
        assert_eq!(ours, tp, "{text}: ~tp");
    }
}

#[test]
fn floats_print_shortest_like_erlang() {
    // io:format("~p", ...) on OTP 25.
    let cases = [
        (1.0, "1.0"),
        (0.1, "0.1"),
        (1.0e10, "1.0e10"),
        (1.0e15, "1.0e15"),
        (123456789012345678.0, "1.2345678901234568e17"),
        (1.5e-4, "1.5e-4"),
        (0.001, "0.001"),
        (5.0e-324, "5.0e-324"),
        (-0.0, "-0.0"),
        (1.7976931348623157e308, "1.7976931348623157e308"),
        (100.0, "100.0"),
        (1000.0, "1.0e3"),
        (1234.5, "1234.5"),
        (0.0001, "0.0001"),
        (1.2e-4, "1.2e-4"),
        (12345678.9, "12345678.9"),
        (0.0025, "0.0025"),
    ];
    for (v, want) in cases {
        assert_eq!(float_text(v), want);
        assert_eq!(parse(want).unwrap(), Term::from(eetf::Float { value: v }));
    }
}

#[test]
fn errors_name_the_column_and_what_was_expected() {
    let cases = [
        ("[1,2", 5, "',', '|' or ']'", "end of input"),
        ("{a b}", 4, "',' or '}'", "atom b"),
        ("[a,]", 4, "a term", "']'"),
        ("#{a}", 4, "'=>' after a map key", "'}'"),
        (
            "'abc",
            5,
            "a closing ' for the quoted atom opened at column 1",
            "end of input",
        ),
        ("16#", 4, "a base-16 digit", "end of input"),
        ("16#fg", 5, "end of input (one term only)", "atom g"),
        ("1 2", 3, "end of input (one term only)", "integer 2"),
        (
            "<<1:x>>",
            5,
            "a segment size (a non-negative integer)",
            "atom x",
        ),
        ("[a|b,c]", 5, "']' after the tail of a list", "','"),
        ("1.0e", 5, "the digits of the exponent", "end of input"),
        ("- a", 3, "a number after '-'", "atom a"),
        ("{ok, é€}", 7, "a term", "'€'"),
        ("[a,\n  b", 4, "',', '|' or ']'", "end of input"),
    ];
    for (text, col, expected, found) in cases {
        let e = parse(text).expect_err(text);
        assert_eq!(
            (e.column, e.expected.as_str(), e.found.as_str()),
            (col, expected, found),
            "{text:?}: {e}"
        );
    }
    let e = parse("Foo").unwrap_err();
    assert_eq!(e.column, 1);
    assert!(e.to_string().contains("variable Foo"), "{e}");
    let e = parse("[end]").unwrap_err();
    assert_eq!(e.column, 2);
    assert!(e.to_string().contains("quote it as 'end'"), "{e}");
    assert_eq!(parse("[a,\n  b").unwrap_err().line, 2);
    assert!(parse(&format!("'{}'", "x".repeat(256))).is_err());
    assert!(parse(&"x".repeat(256)).is_err());
    assert!(parse(&"x".repeat(255)).is_ok());
    assert!(parse("<<0:99999999999>>").is_err());
}

#[test]
fn truncated_printing_is_bounded() {
    let t = parse(&format!("{{{}}}", vec!["abc"; 10_000].join(","))).unwrap();
    let s = print_truncated(&t, 40);
    assert_eq!(s.chars().count(), 40);
    assert!(s.starts_with("{abc,abc,") && s.ends_with("..."), "{s}");
    assert_eq!(print_truncated(&parse("{a,b}").unwrap(), 5), "{a,b}");
    assert_eq!(print_truncated(&parse("{a,b}").unwrap(), 4), "{...");
    let big = Term::from(eetf::Binary::from(vec![0u8; 1 << 20]));
    assert_eq!(print_truncated(&big, 20).chars().count(), 20);
}

#[test]
fn deep_terms_parse_and_print_without_recursion() {
    on_big_stack(|| {
        let depth = 100_000;
        let text = format!("{}a{}", "[{".repeat(depth), "}]".repeat(depth));
        let t = parse(&text).unwrap();
        assert_eq!(print(&t), text);
        let e = parse(&text[..text.len() - 1]).unwrap_err();
        assert_eq!(e.column, text.len());
    });
}

/// Every BEAM vector that has a literal syntax prints to text that parses back to a term
/// with the same hash (the vectors cover every type and the awkward values).
#[test]
fn vectors_round_trip_through_text() {
    on_big_stack(|| {
        let vectors = include_str!("fixtures/phash2/vectors_dev.tsv");
        let mut checked = 0;
        for (i, line) in vectors.lines().enumerate() {
            let mut cols = line.split('\t');
            let b64 = cols.next().unwrap();
            let want: u32 = cols.next().unwrap().parse().unwrap();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            let t = etf::decode(&bytes, &Limits::default()).unwrap();
            if has_no_literal_syntax(&t) {
                continue;
            }
            let text = print(&t);
            let back = parse(&text)
                .unwrap_or_else(|e| panic!("line {}: {e}\n{}", i + 1, print_truncated(&t, 300)));
            assert_eq!(
                phash2(&back).unwrap(),
                want,
                "line {}: {}",
                i + 1,
                print_truncated(&t, 300)
            );
            checked += 1;
        }
        assert!(
            checked > 3000,
            "only {checked} vectors had a literal syntax"
        );
    });
}

/// Does `t` contain a pid, port, reference or closure (which print, but do not parse)?
fn has_no_literal_syntax(t: &Term) -> bool {
    let mut stack = vec![t];
    while let Some(t) = stack.pop() {
        match t {
            Term::Pid(_) | Term::Port(_) | Term::Reference(_) | Term::InternalFun(_) => {
                return true
            }
            Term::List(l) => stack.extend(&l.elements),
            Term::ImproperList(l) => {
                stack.extend(&l.elements);
                stack.push(&l.last);
            }
            Term::Tuple(tu) => stack.extend(&tu.elements),
            Term::Map(m) => m.map.iter().for_each(|(k, v)| stack.extend([k, v])),
            _ => {}
        }
    }
    false
}

#[test]
fn opaque_terms_print_like_erlang_with_the_node_name() {
    let pid = Term::from(eetf::Pid::from(("a@b", 85, 0)));
    assert_eq!(print(&pid), "<a@b.85.0>");
    let port = Term::from(eetf::Port {
        node: eetf::Atom::from("a@b"),
        id: 7,
        creation: 1,
    });
    assert_eq!(print(&port), "#Port<a@b.7>");
    let r = Term::from(eetf::Reference {
        node: eetf::Atom::from("a@b"),
        id: vec![1, 2, 3],
        creation: 1,
    });
    assert_eq!(print(&r), "#Ref<a@b.3.2.1>");
    let f = Term::from(eetf::InternalFun::New {
        module: eetf::Atom::from("erl_eval"),
        arity: 1,
        pid: eetf::Pid::from(("a@b", 1, 0)),
        free_vars: vec![],
        index: 6,
        uniq: [0; 16],
        old_index: 6,
        old_uniq: 3316493,
    });
    assert_eq!(print(&f), "#Fun<erl_eval.6.3316493>");
    assert_eq!(
        print(&Term::from(eetf::Tuple::from(vec![pid, f]))),
        "{<a@b.85.0>,#Fun<erl_eval.6.3316493>}"
    );
}
