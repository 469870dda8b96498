//! Imports between the crate's top-level modules run one way (issue 9): this test reads every
//! `crate::` and `super::` path in `src/`, builds the graph of top-level modules (`src/<m>.rs`
//! or `src/<m>/`) and fails on any cycle, printing each cycle with the lines that make it.
//! It also checks the declared direction: every module has a place in [`LAYERS`] and imports
//! only modules of lower layers, never one of its own layer (protocol <- hub <- {adapter, ws,
//! api} <- server <- broadcaster <- lib/main, with the leaves at the bottom and the start-up
//! code at the top). `lib.rs` and `main.rs` are the root and are not nodes. Test-only code
//! counts: a `#[cfg(test)]` import is still an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One import of module `to` by module `from`, with where it was read.
#[derive(Debug, Clone)]
struct Edge {
    from: String,
    to: String,
    at: String,
}

/// The top-level module a file under `src/` belongs to, and its module path (`hub/presence.rs`
/// -> ["hub", "presence"]); `None` for the crate root files.
fn module_path(rel: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?.to_string();
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return None;
    }
    if stem != "mod" {
        parts.push(stem);
    }
    Some(parts)
}

/// The source with comments, string and char literals blanked (newlines kept, so line numbers
/// stay right): a doc comment naming `crate::x` is not an import.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |c: u8| if c == b'\n' { b'\n' } else { b' ' };
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if b[i] == b'r' && (b[i..].starts_with(b"r\"") || b[i..].starts_with(b"r#")) {
            // Raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while j < b.len() && b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            if j < b.len() && b[j] == b'"' && (i == 0 || !is_ident(b[i - 1])) {
                let mut close = vec![b'"'];
                close.extend(std::iter::repeat_n(b'#', hashes));
                let end = b[j + 1..]
                    .windows(close.len())
                    .position(|w| w == close.as_slice())
                    .map_or(b.len(), |p| j + 1 + p + close.len());
                out.extend(b[i..end].iter().map(|&c| blank(c)));
                i = end;
            } else {
                out.push(b[i]);
                i += 1;
            }
        } else if b[i] == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
                out.push(blank(b[i]));
                i += 1;
            }
            out.push(b' ');
            i += 1;
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('"', '\'', '\n'); lifetimes ('a) have no closing quote nearby.
            let end = b[i + 1..]
                .iter()
                .skip(1)
                .position(|&c| c == b'\'')
                .map_or(b.len(), |p| i + 2 + p + 1);
            out.extend(b[i..end].iter().map(|&c| blank(c)));
            i = end;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The first segments of the paths a `{...}` group starting at `s[0] == '{'` lists.
fn group_heads(s: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut item_start = true;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    item_start = true;
                    continue;
                }
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => {
                if !cur.is_empty() {
                    heads.push(std::mem::take(&mut cur));
                }
                item_start = true;
                continue;
            }
            _ => {}
        }
        if depth == 1 && item_start {
            if c.is_ascii_alphanumeric() || c == '_' {
                cur.push(c);
            } else if !cur.is_empty() {
                heads.push(std::mem::take(&mut cur));
                item_start = false;
            }
        }
    }
    if !cur.is_empty() {
        heads.push(cur);
    }
    heads
}

/// Every top-level module a file's code names, with the line it is named on.
fn imports(module: &[String], src: &str) -> Vec<(String, usize)> {
    let code = strip(src);
    let b = code.as_bytes();
    let mut found = Vec::new();
    let line_of = |pos: usize| code[..pos].matches('\n').count() + 1;
    let mut i = 0;
    while i < b.len() {
        let boundary = i == 0 || !(is_ident(b[i - 1]) || b[i - 1] == b':');
        let rest = &code[i..];
        // Which module path the prefix at `i` stands for, and where its path continues.
        let resolved: Option<(Vec<String>, usize)> = if boundary && rest.starts_with("crate::") {
            Some((Vec::new(), i + "crate::".len()))
        } else if boundary && rest.starts_with("super::") {
            let mut j = i;
            let mut ups = 0;
            while code[j..].starts_with("super::") {
                ups += 1;
                j += "super::".len();
            }
            // From src/hub/presence.rs ["hub","presence"], `super::` is hub and
            // `super::super::` the crate root. Inline `mod tests` adds a level we cannot see
            // without parsing; such imports stay inside their own top-level module anyway.
            (ups <= module.len()).then(|| (module[..module.len() - ups].to_vec(), j))
        } else {
            None
        };
        let Some((base, at)) = resolved else {
            i += 1;
            continue;
        };
        let heads: Vec<String> = if !base.is_empty() {
            vec![base[0].clone()]
        } else if code[at..].starts_with('{') {
            group_heads(&code[at..])
        } else {
            let len = code[at..].bytes().take_while(|&c| is_ident(c)).count();
            vec![code[at..at + len].to_string()]
        };
        for h in heads {
            if !h.is_empty() && h != "self" {
                found.push((h, line_of(i)));
            }
        }
        i = at;
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The import edges between top-level modules of the tree at `src`, given as
/// (path relative to src, file contents).
fn edges(files: &[(PathBuf, String)]) -> Vec<Edge> {
    let mut modules = BTreeSet::new();
    for (rel, _) in files {
        if let Some(m) = module_path(rel) {
            modules.insert(m[0].clone());
        }
    }
    let mut out = Vec::new();
    for (rel, src) in files {
        let Some(m) = module_path(rel) else { continue };
        for (to, line) in imports(&m, src) {
            if to != m[0] && modules.contains(&to) {
                let text = src.lines().nth(line - 1).unwrap_or("").trim().to_string();
                out.push(Edge {
                    from: m[0].clone(),
                    to,
                    at: format!("src/{}:{line}: {text}", rel.display()),
                });
            }
        }
    }
    out
}

/// At most this many cycles are listed (the rest are counted).
const MAX_LISTED: usize = 40;

/// Every elementary cycle of the module graph (each module at most once per ring), shortest
/// first; each step carries the first line that makes it.
fn cycles(edges: &[Edge]) -> Vec<Vec<Edge>> {
    let mut graph: BTreeMap<&str, BTreeMap<&str, &Edge>> = BTreeMap::new();
    for e in edges {
        graph.entry(&e.from).or_default().entry(&e.to).or_insert(e);
        graph.entry(&e.to).or_default();
    }
    let mut out = Vec::new();
    // Each ring is found once: from its smallest module, through larger ones only.
    fn walk<'a>(
        graph: &BTreeMap<&'a str, BTreeMap<&'a str, &'a Edge>>,
        start: &'a str,
        at: &'a str,
        path: &mut Vec<&'a Edge>,
        out: &mut Vec<Vec<Edge>>,
    ) {
        for (&next, &e) in &graph[at] {
            if next == start {
                let mut ring: Vec<Edge> = path.iter().map(|e| (*e).clone()).collect();
                ring.push(e.clone());
                out.push(ring);
            } else if next > start && !path.iter().any(|p| p.from == next) {
                path.push(e);
                walk(graph, start, next, path, out);
                path.pop();
            }
        }
    }
    for &start in graph.keys() {
        walk(&graph, start, start, &mut Vec::new(), &mut out);
    }
    out.sort_by_key(|r| r.len());
    out
}

fn report(cycles: &[Vec<Edge>]) -> String {
    let mut s = format!(
        "{} import cycle(s) between top-level modules of src/ \
         (intended: protocol <- hub <- {{adapter, ws, api}} <- server <- broadcaster <- lib/main):\n",
        cycles.len()
    );
    for ring in cycles.iter().take(MAX_LISTED) {
        let mut names: Vec<&str> = ring.iter().map(|e| e.from.as_str()).collect();
        names.push(&ring[0].from);
        s += &format!("  {}\n", names.join(" -> "));
        for e in ring {
            s += &format!("      {} -> {}: {}\n", e.from, e.to, e.at);
        }
    }
    if cycles.len() > MAX_LISTED {
        s += &format!("  ... and {} longer ones\n", cycles.len() - MAX_LISTED);
    }
    s
}

fn read_tree(src: &Path) -> Vec<(PathBuf, String)> {
    let mut paths = Vec::new();
    rust_files(src, &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p.strip_prefix(src).unwrap().to_path_buf(), text)
        })
        .collect()
}

/// The declared layers, lowest first (DESIGN.md, "Rooms"). A module imports only modules of
/// lower layers; modules of one layer do not import each other.
const LAYERS: &[&[&str]] = &[
    // Leaves: import no other module of the crate.
    &[
        "protocol",
        "apps",
        "auth",
        "env",
        "ratelog",
        "reload",
        "tls",
        "readiness",
        "redis_probe",
        "logging",
    ],
    &["hub"],
    &["metrics"],
    &["appstore", "listener"],
    &["adapter", "ws", "api"],
    &["webhooks", "dev"],
    // An observer of the hub and of the webhook sender.
    &["console"],
    &["server"],
    &["broadcaster"],
    &["authorize"],
    &["config"],
    &["startup"],
    &["testing"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Modules missing from [`LAYERS`], and edges that do not go down a layer.
fn against_layers(edges: &[Edge]) -> Vec<String> {
    let mut out = BTreeSet::new();
    for e in edges {
        match (layer_of(&e.from), layer_of(&e.to)) {
            (Some(from), Some(to)) if to < from => {}
            (Some(from), Some(to)) => {
                let how = if from == to { "sideways" } else { "upward" };
                out.insert(format!("{how}: {} -> {}: {}", e.from, e.to, e.at));
            }
            (f, t) => {
                for (m, l) in [(&e.from, f), (&e.to, t)] {
                    if l.is_none() {
                        out.insert(format!(
                            "{m} has no place in LAYERS (tests/import_cycles.rs)"
                        ));
                    }
                }
            }
        }
    }
    out.into_iter().collect()
}

#[test]
fn imports_go_down_the_declared_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let tree = read_tree(&src);
    let wrong = against_layers(&edges(&tree));
    assert!(
        wrong.is_empty(),
        "\nimports against the declared layers:\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn the_layer_check_finds_sideways_and_upward_imports() {
    let t = tree(&[
        ("lib.rs", ""),
        ("hub/mod.rs", "use crate::protocol::Frame;\n"),
        ("adapter.rs", "use crate::api::AppState;\n"),
        ("api.rs", "use crate::hub::Hub;\n"),
        ("protocol.rs", "use crate::server::x;\n"),
        ("server.rs", "use crate::nowhere::y;\n"),
        ("nowhere.rs", ""),
    ]);
    let wrong = against_layers(&edges(&t));
    assert_eq!(wrong.len(), 3, "{wrong:#?}");
    assert!(wrong[0].starts_with("nowhere has no place"), "{wrong:#?}");
    assert!(
        wrong[1].starts_with("sideways: adapter -> api: src/adapter.rs:1"),
        "{wrong:#?}"
    );
    assert!(
        wrong[2].starts_with("upward: protocol -> server"),
        "{wrong:#?}"
    );
}

#[test]
fn no_import_cycles_between_top_level_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let tree = read_tree(&src);
    let found = cycles(&edges(&tree));
    assert!(found.is_empty(), "\n{}", report(&found));
}

fn tree(files: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
    files
        .iter()
        .map(|(p, s)| (PathBuf::from(p), s.to_string()))
        .collect()
}

#[test]
fn the_check_finds_a_cycle_and_names_its_lines() {
    let t = tree(&[
        ("lib.rs", "pub mod a; pub mod b; pub mod c;"),
        ("a.rs", "use crate::b::B;\n"),
        ("b/mod.rs", "mod inner;\n"),
        (
            "b/inner.rs",
            "// crate::c in a comment is not an import\nuse super::super::c::C;\n",
        ),
        (
            "c.rs",
            "fn f() { let s = \"crate::a\"; }\nuse crate::{protocol, a::{X, Y}};\n",
        ),
    ]);
    let found = cycles(&edges(&t));
    assert_eq!(found.len(), 1, "{}", report(&found));
    let text = report(&found);
    assert!(text.contains("  a -> b -> c -> a\n"), "{text}");
    assert!(text.contains("src/b/inner.rs:2"), "{text}");
    assert!(text.contains("src/c.rs:2"), "{text}");
    assert!(!text.contains("src/b/inner.rs:1"), "{text}");
    assert!(!text.contains("src/c.rs:1"), "{text}");
}

#[test]
fn a_one_way_tree_passes() {
    let t = tree(&[
        ("lib.rs", "pub mod protocol; pub mod hub; pub mod ws;"),
        ("protocol/mod.rs", "pub struct Frame;\n"),
        (
            "hub/mod.rs",
            "use crate::protocol::Frame;\nuse self::x::Y;\nmod x;\n",
        ),
        ("hub/x.rs", "use super::Z;\nuse crate::hub::W;\n"),
        (
            "ws.rs",
            "use crate::{hub::Hub, protocol::Frame};\nfn f<'a>(c: char) -> bool { c == '\"' }\n",
        ),
    ]);
    let e = edges(&t);
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(cycles(&e).is_empty());
}
