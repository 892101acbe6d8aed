//! `rlhf-tui devices`: what `--device` can choose here.

use crate::device;

pub fn run() -> anyhow::Result<()> {
    println!("backends in this build: {}", device::compiled_backends().join(", "));
    for info in device::list() {
        let kind = if info.accelerator {
            "accelerator"
        } else {
            "cpu/software"
        };
        println!("  --device {:<5} {} [{kind}]", info.choice, info.name);
    }
    let auto = device::select(device::DeviceChoice::Auto)?;
    println!("--device auto selects: {}", auto.label);
    Ok(())
}
