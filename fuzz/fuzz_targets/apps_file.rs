//! The apps file (`--apps-file`): the input is the file's contents, read through the same
//! flag resolution the binary runs. It never panics; what it accepts is a non-empty list of
//! apps whose keys are unique enough to look up, and a hub can be built from it.
#![no_main]

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use rf_broadcast::testing::Cli;
use rf_broadcast::{Apps, Hub, HubSettings};
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("rf-fuzz-apps-{}.json", std::process::id()));
    let Ok(mut file) = std::fs::File::create(&path) else {
        return;
    };
    if file.write_all(data).is_err() {
        return;
    }
    drop(file);
    let argv = ["rf-broadcast", "--apps-file", path.to_str().unwrap_or("")];
    let Ok(cli) = Cli::try_parse_from(argv) else {
        return;
    };
    let no_env = |_: &str| -> Option<String> { None };
    if let Ok(config) = cli.resolve(&no_env) {
        assert!(!config.apps.is_empty(), "accepted an apps file with no app");
        let apps = Apps::new(config.apps.clone());
        for app in &config.apps {
            assert!(apps.by_id(&app.id).is_some());
            assert!(apps.by_key(&app.key).is_some());
        }
        let _hub = Hub::new(apps, HubSettings::default());
    }
});
