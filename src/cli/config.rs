//! `rlhf-tui config`: where a person's settings file is, whether it is
//! there, and the settings in force (with what a flag overrides).

use crate::device::DeviceChoice;
use crate::settings::{SETTINGS_VAR, Settings};

pub fn run(settings: &Settings, device_flag: Option<DeviceChoice>) -> anyhow::Result<()> {
    match Settings::path() {
        Some(path) if path.exists() => println!("settings: {}", path.display()),
        Some(path) => println!("settings: {} (not there: the defaults are in force)", path.display()),
        None => println!("settings: no config directory on this platform; set {SETTINGS_VAR}"),
    }
    let annotator = match &settings.annotator {
        Some(name) => format!("{name} (settings; --annotator overrides)"),
        None => "your login name (--annotator overrides)".into(),
    };
    println!("annotator: {annotator}");
    let name = |d: DeviceChoice| format!("{d:?}").to_lowercase();
    let device = match (device_flag, settings.device) {
        (Some(flag), _) => format!("{} (--device or BURN_DEVICE)", name(flag)),
        (None, Some(device)) => format!("{} (settings)", name(device)),
        (None, None) => "auto".into(),
    };
    println!("device: {device}");
    if settings.judges.is_empty() {
        println!("judges: none (a run names one as judge: (kind: Named(\"…\")))");
    }
    for (name, judge) in &settings.judges {
        let key = judge.api_key_env.as_ref().map_or("no key".to_string(), |var| {
            let set = if std::env::var_os(var).is_some() {
                "set"
            } else {
                "NOT SET"
            };
            format!("key in ${var} ({set})")
        });
        println!("judge {name}: {} model {} ({key})", judge.base_url, judge.model);
    }
    println!("\n{}", settings.to_ron());
    Ok(())
}
