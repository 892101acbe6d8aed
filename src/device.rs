//! Choosing where tensors live: `--device auto|cpu|wgpu|cuda|tch` (or
//! `BURN_DEVICE`). `auto` takes a real GPU when one is there and the CPU
//! otherwise; a software rasteriser is never taken for a GPU.

use burn::tensor::Device;

/// The `--device` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// A real GPU if this build and machine have one, else the CPU.
    #[default]
    Auto,
    /// burn's pure-Rust CPU backend (flex).
    Cpu,
    /// wgpu: Vulkan, Metal, DX12 or GL, whichever the machine offers.
    Wgpu,
    /// CUDA (build with `--features cuda`).
    Cuda,
    /// LibTorch (build with `--features tch`; needs libtorch installed).
    Tch,
}

/// A device and how to name it to a person.
#[derive(Clone, Debug)]
pub struct Selected {
    pub device: Device,
    pub label: String,
}

/// One line of `rlhf-tui devices`.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceInfo {
    pub choice: &'static str,
    pub name: String,
    /// Whether `--device auto` would count it as a real accelerator.
    pub accelerator: bool,
}

/// Resolves a choice to a device, or says what to do when this build or
/// machine cannot provide it.
pub fn select(choice: DeviceChoice) -> anyhow::Result<Selected> {
    match choice {
        DeviceChoice::Cpu => cpu(),
        DeviceChoice::Wgpu => wgpu(),
        DeviceChoice::Cuda => cuda(),
        DeviceChoice::Tch => tch(),
        DeviceChoice::Auto => {
            if cuda_driver_present()
                && let Ok(selected) = cuda()
            {
                return Ok(selected);
            }
            if list().iter().any(|d| d.choice == "wgpu" && d.accelerator) {
                return wgpu();
            }
            cpu()
        }
    }
}

/// Whether `device` is the CPU backend (with or without autodiff), where
/// the fused CPU kernels and data-parallel shards apply.
pub fn is_cpu(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    return matches!(
        device.clone().inner().as_dispatch(),
        burn::backend::DispatchDevice::Flex(_)
    );
    #[cfg(not(feature = "flex"))]
    return {
        let _ = device;
        false
    };
}

/// How many shards a batch of `rows` rows is split into on `device`: one
/// per thread on the CPU backend (at most one per row), one on a GPU,
/// where each operation already fills the device.
pub fn shards(device: &Device, rows: usize) -> usize {
    if is_cpu(device) {
        rayon::current_num_threads().clamp(1, rows.max(1))
    } else {
        1
    }
}

#[cfg(feature = "flex")]
fn cpu() -> anyhow::Result<Selected> {
    Ok(Selected {
        device: Device::flex(),
        label: "cpu (flex)".into(),
    })
}

#[cfg(not(feature = "flex"))]
fn cpu() -> anyhow::Result<Selected> {
    anyhow::bail!(
        "this build has no CPU backend: rebuild with `--features flex` (a default feature), or pass `--device wgpu`"
    )
}

#[cfg(feature = "wgpu")]
fn wgpu() -> anyhow::Result<Selected> {
    let Some(info) = wgpu_adapters().into_iter().next() else {
        anyhow::bail!(
            "--device wgpu: no Vulkan, Metal, DX12 or GL adapter found; install a driver (Mesa's for a software one) or use --device cpu"
        );
    };
    let device = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    Ok(Selected {
        device,
        label: format!("wgpu ({}, {:?})", info.name, info.backend),
    })
}

#[cfg(not(feature = "wgpu"))]
fn wgpu() -> anyhow::Result<Selected> {
    anyhow::bail!("--device wgpu: this build has no wgpu support; rebuild with `--features wgpu` or use --device cpu")
}

#[cfg(feature = "cuda")]
fn cuda() -> anyhow::Result<Selected> {
    if !cuda_driver_present() {
        anyhow::bail!("--device cuda: no NVIDIA driver found (/proc/driver/nvidia/version); use --device cpu or wgpu");
    }
    Ok(Selected {
        device: Device::cuda(0),
        label: "cuda:0".into(),
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> anyhow::Result<Selected> {
    anyhow::bail!(
        "--device cuda: this build has no CUDA support; rebuild with `--features cuda` (needs the CUDA toolkit)"
    )
}

#[cfg(feature = "tch")]
#[allow(deprecated)] // burn marks LibTorch deprecated; it stays an option here
fn tch() -> anyhow::Result<Selected> {
    Ok(Selected {
        device: Device::libtorch(),
        label: "libtorch (cpu)".into(),
    })
}

#[cfg(not(feature = "tch"))]
fn tch() -> anyhow::Result<Selected> {
    anyhow::bail!(
        "--device tch: this build has no LibTorch support; install libtorch and rebuild with `--features tch` (see README)"
    )
}

fn cuda_driver_present() -> bool {
    cfg!(feature = "cuda") && std::path::Path::new("/proc/driver/nvidia/version").exists()
}

/// Vulkan, Metal and DX12 adapters. GL is left out: probing it prints EGL
/// warnings on machines without a display, and a GPU with a GL driver has
/// a Vulkan one too.
#[cfg(feature = "wgpu")]
fn wgpu_adapters() -> Vec<burn::tensor::wgpu::wgpu::AdapterInfo> {
    use burn::tensor::wgpu::wgpu;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapters = futures_lite::future::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    adapters.into_iter().map(|a| a.get_info()).collect()
}

/// What this build and this machine offer, the CPU first.
pub fn list() -> Vec<DeviceInfo> {
    let mut out = vec![DeviceInfo {
        choice: "cpu",
        name: "burn flex (pure-Rust CPU)".into(),
        accelerator: false,
    }];
    #[cfg(feature = "wgpu")]
    for info in wgpu_adapters() {
        use burn::tensor::wgpu::wgpu::DeviceType;
        let accelerator = matches!(
            info.device_type,
            DeviceType::DiscreteGpu | DeviceType::IntegratedGpu | DeviceType::VirtualGpu
        );
        let name = format!(
            "{} ({:?}, {:?}, driver {})",
            info.name, info.backend, info.device_type, info.driver
        );
        out.push(DeviceInfo {
            choice: "wgpu",
            name,
            accelerator,
        });
    }
    if cuda_driver_present() {
        out.push(DeviceInfo {
            choice: "cuda",
            name: "NVIDIA GPU 0".into(),
            accelerator: true,
        });
    }
    if cfg!(feature = "tch") {
        out.push(DeviceInfo {
            choice: "tch",
            name: "LibTorch CPU".into(),
            accelerator: false,
        });
    }
    out
}

/// The cargo features this binary was built with, for `devices`.
pub fn compiled_backends() -> Vec<&'static str> {
    [
        ("flex", cfg!(feature = "flex")),
        ("wgpu", cfg!(feature = "wgpu")),
        ("cuda", cfg!(feature = "cuda")),
        ("tch", cfg!(feature = "tch")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect()
}
