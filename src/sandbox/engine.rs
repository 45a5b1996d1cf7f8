//! The one wasmtime configuration shared by the compiler (node agent, module
//! cache) and the loader (sandbox process).
//!
//! Precompiled artifacts only load into an engine whose code-generation
//! settings match the compiler's, so both sides build their `Config` here.
//! The settings that differ by [`EngineRole`] or by pod (parallel
//! compilation, stack sizes) are runtime-only and leave
//! [`engine_fingerprint`] unchanged; a test holds that true.

use std::hash::{Hash, Hasher};

use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, OptLevel, Strategy, WasmBacktraceDetails,
};

/// Default maximum wasm call-stack size (wasmtime's own default).
pub const DEFAULT_MAX_WASM_STACK: usize = 512 * 1024;
/// Smallest and largest stack a spec may ask for.
pub const MIN_WASM_STACK: usize = 64 * 1024;
/// See [`MIN_WASM_STACK`].
pub const MAX_WASM_STACK: usize = 16 * 1024 * 1024;
/// Stack left to host functions (WASI, tokio) on the fiber that runs wasm.
const HOST_STACK_HEADROOM: usize = 1024 * 1024;

/// Errors building an engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot build the wasmtime engine ({role:?}): {message}")]
    Build { role: EngineRole, message: String },
}

/// Who the engine is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineRole {
    /// The node agent compiling modules into the cache: may use every core.
    Compiler,
    /// A sandbox process: never compiles, one thread.
    Sandbox,
}

/// Builds the wasmtime configuration for `role`. `max_wasm_stack` is the
/// pod's stack limit (clamped to [`MIN_WASM_STACK`]..=[`MAX_WASM_STACK`]);
/// `None` means [`DEFAULT_MAX_WASM_STACK`].
pub fn engine_config(role: EngineRole, max_wasm_stack: Option<usize>) -> Config {
    let stack = max_wasm_stack
        .unwrap_or(DEFAULT_MAX_WASM_STACK)
        .clamp(MIN_WASM_STACK, MAX_WASM_STACK);
    let mut config = Config::new();
    config
        .strategy(Strategy::Cranelift)
        .cranelift_opt_level(OptLevel::Speed)
        // The sandbox stops a module by bumping the epoch from its SIGTERM
        // handler; no ticker thread runs, so this costs a load and compare
        // at loop heads and function entries and nothing else.
        .epoch_interruption(true)
        .max_wasm_stack(stack)
        // WASI preview 2 is async in wasmtime-wasi; wasm runs on a fiber
        // whose stack must hold the wasm stack plus host frames. Pages are
        // only touched as used, so the size costs address space, not memory.
        .async_stack_size(stack + HOST_STACK_HEADROOM)
        // One instance per process: on-demand allocation reserves only what
        // the instance needs (the pooling allocator would reserve slots for
        // many instances in every sandbox).
        .allocation_strategy(InstanceAllocationStrategy::OnDemand)
        // 32-bit memories get a full 4 GiB reservation plus guard: bounds
        // checks compile away and memories never move when they grow. This
        // is address space only; resident memory is what the module touches.
        .memory_reservation(4 << 30)
        .memory_guard_size(32 << 20)
        .memory_reservation_for_growth(2 << 30)
        // Data segments are mapped copy-on-write from the artifact, so
        // sandboxes running the same module share those pages.
        .memory_init_cow(true)
        .table_lazy_init(true)
        // Trap offsets name the failing function; DWARF parsing would cost
        // memory in every sandbox and is never needed here.
        .generate_address_map(true)
        .wasm_backtrace_details(WasmBacktraceDetails::Disable)
        .debug_info(false)
        .parallel_compilation(role == EngineRole::Compiler);
    config
}

/// Builds an engine with [`engine_config`].
pub fn new_engine(role: EngineRole, max_wasm_stack: Option<usize>) -> Result<Engine, EngineError> {
    Engine::new(&engine_config(role, max_wasm_stack)).map_err(|e| EngineError::Build {
        role,
        message: format!("{e:#}"),
    })
}

/// A short hex fingerprint of everything that decides whether an artifact
/// compiled by one engine loads into another (wasmtime version, target,
/// compiler flags, tunables, features). Part of every cache file name, so a
/// new wasmtime or config never picks up a stale artifact.
pub fn engine_fingerprint(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let digest = hasher.0.finalize();
    hex::encode(&digest[..8])
}

/// Feeds `Hash` output into SHA-256, which (unlike `DefaultHasher`) is
/// stable across Rust releases, so fingerprints survive a rebuild.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_and_stack_do_not_change_the_fingerprint() {
        let compiler = new_engine(EngineRole::Compiler, None).unwrap();
        let base = engine_fingerprint(&compiler);
        assert_eq!(base.len(), 16);
        for stack in [None, Some(MIN_WASM_STACK), Some(2 << 20), Some(usize::MAX)] {
            let sandbox = new_engine(EngineRole::Sandbox, stack).unwrap();
            assert_eq!(engine_fingerprint(&sandbox), base, "stack {stack:?}");
        }
    }

    #[test]
    fn codegen_settings_change_the_fingerprint() {
        let base = engine_fingerprint(&new_engine(EngineRole::Compiler, None).unwrap());
        let mut config = engine_config(EngineRole::Compiler, None);
        config.epoch_interruption(false);
        let other = Engine::new(&config).unwrap();
        assert_ne!(engine_fingerprint(&other), base);
    }

    #[test]
    fn compiled_artifacts_load_into_sandbox_engines() {
        let compiler = new_engine(EngineRole::Compiler, None).unwrap();
        let bytes = compiler
            .precompile_module(&wat::parse_str("(module (func (export \"_start\")))").unwrap())
            .unwrap();
        let sandbox = new_engine(EngineRole::Sandbox, Some(256 * 1024)).unwrap();
        // SAFETY: the bytes come from precompile_module just above.
        let module = unsafe { wasmtime::Module::deserialize(&sandbox, &bytes) };
        assert!(module.is_ok(), "{:?}", module.err());
    }
}
