//! Imports a function no host provides (`wasmk:test` `no_such_function`):
//! instantiation must fail and name the import. Core module only.
#[cfg(target_family = "wasm")]
#[link(wasm_import_module = "wasmk:test")]
unsafe extern "C" {
    fn no_such_function() -> i32;
}

fn main() {
    #[cfg(target_family = "wasm")]
    // SAFETY: never reached; instantiation fails because nothing provides it.
    let v = unsafe { no_such_function() };
    #[cfg(not(target_family = "wasm"))]
    let v = 0;
    println!("got {v}");
}
