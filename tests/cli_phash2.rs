//! The `rexi-node phash2` and `rexi-node server-id` subcommands, run as an operator would.

mod support;
use support::Run;

fn run(args: &[&str]) -> Run {
    support::rexi_node(args, &[], None)
}

fn run_stdin(args: &[&str], input: &str) -> Run {
    support::rexi_node(args, &[], Some(input))
}

#[test]
fn phash2_of_a_term() {
    let cases: &[(&[&str], &str)] = &[
        (&["phash2", "'a@127.0.0.1'"], "41428801\n"),
        (&["phash2", "a"], "97\n"),
        (&["phash2", "{a,b}"], "101277806\n"),
        (
            &["phash2", "{a,b}", "--range", "4294967296"],
            "1980325998\n",
        ),
        (
            &["phash2", "--range", "4294967296", "fun lists:map/2"],
            "840287883\n",
        ),
        (&["phash2", "-1"], "44071773\n"),
        (
            &["phash2", "-134217729", "--range", "4294967296"],
            "1418916782\n",
        ),
        (&["phash2", "<<1:3>>"], "73037028\n"),
        (&["phash2", "#{'' => foo}."], "30263650\n"),
        (&["phash2", "\"abc\""], "117343302\n"),
        (&["phash2", "a", "--range", "1"], "0\n"),
    ];
    for (args, want) in cases {
        let o = run(args);
        assert_eq!(o.code, 0, "{args:?}: {}", o.err);
        assert_eq!(o.out, *want, "{args:?}");
    }
}

#[test]
fn phash2_explains_bad_input() {
    let o = run(&["phash2", "{a b}"]);
    assert_eq!(o.code, 2);
    let e = o.err;
    assert!(
        e.contains("column 4") && e.contains("expected ',' or '}'"),
        "{e}"
    );
    assert!(e.contains("     ^"), "caret under the column: {e}");

    for bad in ["0", "4294967297", "x", "-5"] {
        let o = run(&["phash2", "a", "--range", bad]);
        assert_ne!(o.code, 0, "--range {bad}");
        assert!(
            o.err.contains("from 1 to 4294967296"),
            "--range {bad}: {}",
            o.err
        );
    }

    let o = run(&["phash2", "a@127.0.0.1"]);
    assert_eq!(o.code, 2);
    assert!(o
        .err
        .contains("hint: node names with dots or dashes are quoted atoms: 'a@127.0.0.1'"));

    let o = run(&["phash2"]);
    assert_ne!(o.code, 0);
    let o = run(&["phash2", "a", "--batch"]);
    assert_ne!(o.code, 0, "TERM and --batch together");
}

#[test]
fn batch_matches_every_beam_vector() {
    let vectors = include_str!("fixtures/phash2/vectors_dev.tsv");
    // Column 1 is the term, column 4 the range: exactly the --batch input format.
    let input: String = vectors
        .lines()
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            format!("{}\t{}\n", c[0], c[3])
        })
        .collect();
    let o = run_stdin(&["phash2", "--batch"], &input);
    assert_eq!(o.code, 0, "{}", o.err);
    let got = o.out;
    let mut n = 0;
    for (i, (line, want)) in got.lines().zip(vectors.lines()).enumerate() {
        let c: Vec<&str> = want.split('\t').collect();
        assert_eq!(line, format!("{}\t{}", c[1], c[2]), "line {}", i + 1);
        n += 1;
    }
    assert_eq!(n, 5000);

    // Without a range, only phash2/1.
    let o = run_stdin(&["phash2", "--batch"], "g3cBYQ==\r\ng3cA\n");
    assert_eq!(o.code, 0);
    assert_eq!(o.out, "97\n0\n");
    // --range applies to lines without their own.
    let o = run_stdin(
        &["phash2", "--batch", "--range", "10"],
        "g3cBYQ==\ng3cBYQ==\t1000\n",
    );
    assert_eq!(o.out, "97\t7\n97\t97\n");
}

#[test]
fn batch_names_the_bad_lines_and_fails_at_the_end() {
    let input = "g3cBYQ==\nnot base64!\ng3cBYQ==\t16\ng3cBYQ==\t0\ng3c=\n\ng3cBYg==\n";
    let o = run_stdin(&["phash2", "--batch"], input);
    assert_ne!(o.code, 0);
    // The good lines are all hashed, in order.
    assert_eq!(o.out, "97\n97\t1\n98\n");
    let e = o.err;
    for n in ["line 2:", "line 4:", "line 5:", "line 6:"] {
        assert!(e.contains(n), "{n} in {e}");
    }
    assert!(e.contains("line 2: not standard base64"), "{e}");
    assert!(e.contains("line 4: '0' is not a range"), "{e}");
    assert!(
        e.contains("line 5: the base64 decodes, but not to an external term"),
        "{e}"
    );
    assert!(
        e.contains("4 line(s) could not be hashed (first: line 2)"),
        "{e}"
    );
}

/// docs/design/migration.md §8: phash2 of the node atom on OTP 25.
const MIGRATION_TABLE: &[(&str, u32)] = &[
    ("nonode@nohost", 70306884),
    ("a@127.0.0.1", 41428801),
    ("b@127.0.0.1", 41232193),
    ("p@127.0.0.1", 40314689),
    ("couchdb@127.0.0.1", 14634705),
    ("node1@127.0.0.1", 77091857),
    ("node2@127.0.0.1", 76895249),
    ("node3@127.0.0.1", 76960785),
    ("rust@127.0.0.1", 112927441),
    ("couchdb@db1.example.com", 27832285),
    ("x@y", 31865),
];

#[test]
fn server_id_prints_both_schemes() {
    for &(node, hash) in MIGRATION_TABLE {
        let want = format!("rexi_server_{hash}\nrexi_server_{node}\n");
        for arg in [node.to_string(), format!("'{node}'")] {
            let o = run(&["server-id", &arg]);
            assert_eq!(o.code, 0, "{arg}: {}", o.err);
            assert_eq!(o.out, want, "{arg}");
        }
    }
}

#[test]
fn server_id_matches_node_names_from_the_beam() {
    // A sample of node_names.tsv, including non-ASCII names, quoted and not.
    let names = include_str!("fixtures/phash2/node_names.tsv");
    for line in names.lines().step_by(97) {
        let c: Vec<&str> = line.split('\t').collect();
        let o = run(&["server-id", c[0]]);
        assert_eq!(o.code, 0, "{}: {}", c[0], o.err);
        assert_eq!(o.out, format!("{}\nrexi_server_{}\n", c[4], c[0]));
    }
    let o = run(&["server-id", r"'h\x{F4}te@\x{F1}u'"]);
    assert_eq!(o.out, "rexi_server_129671157\nrexi_server_hôte@ñu\n");
}

#[test]
fn server_id_rejects_what_cannot_be_a_node() {
    let o = run(&["server-id", "'a@b"]);
    assert_eq!(o.code, 2);
    assert!(o.err.contains("not a quoted atom"), "{}", o.err);
    let o = run(&["server-id", "'{a}'"]);
    assert_eq!(
        o.code, 0,
        "an atom that looks like a tuple is still an atom"
    );
    let o = run(&["server-id", &"n".repeat(256)]);
    assert_eq!(o.code, 2);
    let o = run(&["server-id", "nohost"]);
    assert_eq!(o.code, 0);
    assert!(o.err.contains("no '@'"));
}
