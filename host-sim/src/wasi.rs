//! The subset of WASI preview 1 (`wasi_snapshot_preview1`) that Envoy gives a
//! proxy-wasm VM: clocks, randomness, the VM's environment, stdout/stderr as
//! log lines, and stubs that answer "not supported" for files.
//!
//! The clocks read the host's virtual clock, so scenario time moves them.

use wasmtime::{Caller, Linker};

use crate::abi::LogLevel;
use crate::guest;
use crate::state::VmState;

type C<'a> = Caller<'a, VmState>;

const MODULE: &str = "wasi_snapshot_preview1";

// WASI errno values.
const SUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const EIO: i32 = 29;
const ENOSYS: i32 = 52;
const ENOTSUP: i32 = 58;

/// Most bytes of one `fd_write` that become a log line.
const MAX_WRITE_LOGGED: usize = 64 << 10;

fn errno(result: Result<(), i32>) -> i32 {
    match result {
        Ok(()) => SUCCESS,
        Err(code) => code,
    }
}

fn fault<T>(result: Result<T, crate::abi::Status>) -> Result<T, i32> {
    result.map_err(|_| EFAULT)
}

/// Registers the WASI functions on `linker`, recording each name in `names`.
pub(crate) fn add_to_linker(
    linker: &mut Linker<VmState>,
    names: &mut Vec<(String, String)>,
) -> wasmtime::Result<()> {
    macro_rules! wasi {
        ($name:literal, $func:expr) => {{
            linker.func_wrap(MODULE, $name, $func)?;
            names.push((MODULE.to_owned(), $name.to_owned()));
        }};
    }

    wasi!("clock_time_get", |mut c: C<'_>,
                             id: i32,
                             _precision: i64,
                             out: i32| {
        errno(clock_time_get(&mut c, id, out))
    });
    wasi!("clock_res_get", |mut c: C<'_>, _id: i32, out: i32| {
        errno(fault(guest::write_u64(&mut c, out, 1)))
    });
    wasi!("random_get", |mut c: C<'_>, ptr: i32, len: i32| {
        errno(random_get(&mut c, ptr, len))
    });
    wasi!(
        "environ_sizes_get",
        |mut c: C<'_>, count_out: i32, size_out: i32| {
            errno(environ_sizes_get(&mut c, count_out, size_out))
        }
    );
    wasi!("environ_get", |mut c: C<'_>, pointers: i32, buffer: i32| {
        errno(environ_get(&mut c, pointers, buffer))
    });
    wasi!(
        "args_sizes_get",
        |mut c: C<'_>, count_out: i32, size_out: i32| {
            errno(fault(
                guest::write_u32(&mut c, count_out, 0)
                    .and_then(|()| guest::write_u32(&mut c, size_out, 0)),
            ))
        }
    );
    wasi!("args_get", |_c: C<'_>, _pointers: i32, _buffer: i32| {
        SUCCESS
    });
    wasi!("fd_write", |mut c: C<'_>,
                       fd: i32,
                       iovs: i32,
                       iovs_len: i32,
                       written_out: i32| {
        errno(fd_write(&mut c, fd, iovs, iovs_len, written_out))
    });
    wasi!("fd_read", |_c: C<'_>,
                      _fd: i32,
                      _iovs: i32,
                      _len: i32,
                      _out: i32| ENOSYS);
    wasi!("fd_close", |_c: C<'_>, _fd: i32| ENOTSUP);
    wasi!("fd_seek", |_c: C<'_>,
                      _fd: i32,
                      _offset: i64,
                      _whence: i32,
                      _out: i32| ENOTSUP);
    wasi!("fd_fdstat_get", |mut c: C<'_>, fd: i32, out: i32| {
        errno(fd_fdstat_get(&mut c, fd, out))
    });
    // No directories are pre-opened: EBADF ends the guest's pre-open scan.
    wasi!("fd_prestat_get", |_c: C<'_>, _fd: i32, _out: i32| EBADF);
    wasi!(
        "fd_prestat_dir_name",
        |_c: C<'_>, _fd: i32, _ptr: i32, _len: i32| EBADF
    );
    wasi!("sched_yield", |_c: C<'_>| SUCCESS);
    wasi!("poll_oneoff", |_c: C<'_>,
                          _in: i32,
                          _out: i32,
                          _n: i32,
                          _events_out: i32| {
        ENOTSUP
    });
    wasi!("proc_exit", |_c: C<'_>,
                        code: i32|
     -> wasmtime::Result<()> {
        // Envoy treats an exiting VM as failed; so does the simulator.
        Err(wasmtime::Error::msg(format!(
            "guest called proc_exit({code})"
        )))
    });

    Ok(())
}

fn clock_time_get(c: &mut C<'_>, id: i32, out: i32) -> Result<(), i32> {
    let clock = c.data().shared.clock();
    let now = match id {
        0 => clock.wall_nanos(),
        // Monotonic, process and thread CPU time all follow virtual time.
        1..=3 => clock.monotonic_nanos(),
        _ => return Err(EINVAL),
    };
    fault(guest::write_u64(c, out, now))
}

fn random_get(c: &mut C<'_>, ptr: i32, len: i32) -> Result<(), i32> {
    let (out, state) = fault(guest::view_mut(c, ptr, len as u32 as usize))?;
    state.rng.fill(out).map_err(|_| EIO)
}

fn environ_entries(c: &C<'_>) -> Vec<Vec<u8>> {
    c.data()
        .config
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}\0").into_bytes())
        .collect()
}

fn environ_sizes_get(c: &mut C<'_>, count_out: i32, size_out: i32) -> Result<(), i32> {
    let entries = environ_entries(c);
    let size: usize = entries.iter().map(Vec::len).sum();
    let count = u32::try_from(entries.len()).map_err(|_| EINVAL)?;
    let size = u32::try_from(size).map_err(|_| EINVAL)?;
    fault(guest::write_u32(c, count_out, count))?;
    fault(guest::write_u32(c, size_out, size))
}

fn environ_get(c: &mut C<'_>, pointers: i32, buffer: i32) -> Result<(), i32> {
    let mut pointer_at = pointers as u32;
    let mut string_at = buffer as u32;
    for entry in environ_entries(c) {
        fault(guest::write_u32(c, pointer_at as i32, string_at))?;
        fault(guest::write(c, string_at as i32, &entry))?;
        pointer_at = pointer_at.checked_add(4).ok_or(EFAULT)?;
        let len = u32::try_from(entry.len()).map_err(|_| EFAULT)?;
        string_at = string_at.checked_add(len).ok_or(EFAULT)?;
    }
    Ok(())
}

fn fd_write(c: &mut C<'_>, fd: i32, iovs: i32, iovs_len: i32, written_out: i32) -> Result<(), i32> {
    let level = match fd {
        1 => LogLevel::Info,
        2 => LogLevel::Error,
        _ => return Err(EBADF),
    };

    // Each iovec is (u32 address, u32 length). Many iovecs may point at the
    // same large region, so the copy that becomes the log line is capped.
    let table = fault(guest::read(c, iovs, iovs_len.checked_mul(8).ok_or(EFAULT)?))?;
    let mut data = Vec::new();
    let mut total: u64 = 0;
    for iov in table.chunks_exact(8) {
        let field = |at: usize| -> Result<i32, i32> {
            let raw: [u8; 4] = iov
                .get(at..at + 4)
                .and_then(|s| s.try_into().ok())
                .ok_or(EFAULT)?;
            Ok(i32::from_le_bytes(raw))
        };
        let (ptr, len) = (field(0)?, field(4)? as u32);
        fault(guest::check(c, ptr, len as usize))?;
        total += u64::from(len);
        let room = MAX_WRITE_LOGGED.saturating_sub(data.len());
        let take = (len as usize).min(room);
        if take > 0 {
            data.extend(fault(guest::read(c, ptr, take as i32))?);
        }
    }

    let written = u32::try_from(total).map_err(|_| EINVAL)?;
    let text = String::from_utf8_lossy(&data);
    c.data().log(level, text.trim_end_matches('\n').to_owned());
    fault(guest::write_u32(c, written_out, written))
}

fn fd_fdstat_get(c: &mut C<'_>, fd: i32, out: i32) -> Result<(), i32> {
    if !(0..=2).contains(&fd) {
        return Err(EBADF);
    }
    // fdstat: filetype u8 (2 = character device), pad, flags u16, pad,
    // rights_base u64, rights_inheriting u64.
    let mut stat = [0u8; 24];
    if let Some(filetype) = stat.first_mut() {
        *filetype = 2;
    }
    if let Some(rights) = stat.get_mut(8..16) {
        rights.copy_from_slice(&u64::MAX.to_le_bytes());
    }
    fault(guest::write(c, out, &stat))
}
