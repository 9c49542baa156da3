//! Reading and writing guest linear memory, with every address checked.
//!
//! Guest pointers and lengths arrive as `i32` and are read as unsigned 32-bit
//! values (wasm32). An address outside memory is `InvalidMemoryAccess`.

use wasmtime::Caller;

use crate::abi::Status;
use crate::state::VmState;

type C<'a> = Caller<'a, VmState>;

fn range(ptr: i32, len: usize) -> Result<std::ops::Range<usize>, Status> {
    let start = ptr as u32 as usize;
    let end = start.checked_add(len).ok_or(Status::InvalidMemoryAccess)?;
    Ok(start..end)
}

/// Checks that `len` bytes at `ptr` lie inside guest memory, so that a host
/// call can refuse a bad range before it allocates anything for it.
pub(crate) fn check(c: &C<'_>, ptr: i32, len: usize) -> Result<(), Status> {
    let memory = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let range = range(ptr, len)?;
    if range.end > memory.data_size(c) {
        return Err(Status::InvalidMemoryAccess);
    }
    Ok(())
}

/// Copies `len` bytes at `ptr` out of guest memory.
pub(crate) fn read(c: &mut C<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    view(c, ptr, len).map(<[u8]>::to_vec)
}

/// The `len` bytes at `ptr`, borrowed from guest memory: for arguments the
/// host only looks at, so that reading them copies nothing.
pub(crate) fn view<'c>(c: &'c C<'_>, ptr: i32, len: i32) -> Result<&'c [u8], Status> {
    let memory = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let range = range(ptr, len as u32 as usize)?;
    memory.data(c).get(range).ok_or(Status::InvalidMemoryAccess)
}

/// The `len` bytes at `ptr`, writable in place, and beside them the VM
/// state: for a host call that fills guest memory from its state, or changes
/// its state by an argument it only looks at.
pub(crate) fn view_mut<'c>(
    c: &'c mut C<'_>,
    ptr: i32,
    len: usize,
) -> Result<(&'c mut [u8], &'c mut VmState), Status> {
    let memory = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let range = range(ptr, len)?;
    let (bytes, state) = memory.data_and_store_mut(c);
    let bytes = bytes.get_mut(range).ok_or(Status::InvalidMemoryAccess)?;
    Ok((bytes, state))
}

/// Copies `bytes` into guest memory at `ptr`.
pub(crate) fn write(c: &mut C<'_>, ptr: i32, bytes: &[u8]) -> Result<(), Status> {
    let (target, _) = view_mut(c, ptr, bytes.len())?;
    target.copy_from_slice(bytes);
    Ok(())
}

pub(crate) fn write_u32(c: &mut C<'_>, ptr: i32, value: u32) -> Result<(), Status> {
    write(c, ptr, &value.to_le_bytes())
}

pub(crate) fn write_u64(c: &mut C<'_>, ptr: i32, value: u64) -> Result<(), Status> {
    write(c, ptr, &value.to_le_bytes())
}

/// Hands `bytes` to the guest: allocates a block with the guest's allocator,
/// copies the bytes in and writes the block's address and size to `ptr_out`
/// and `len_out`. An empty value is address 0, size 0, as in Envoy.
///
/// A trap inside the allocator is the guest's failure and is returned as the
/// outer error; a bad address is a status for the guest.
pub(crate) fn give(
    c: &mut C<'_>,
    bytes: &[u8],
    ptr_out: i32,
    len_out: i32,
) -> wasmtime::Result<Result<(), Status>> {
    let Ok(len) = i32::try_from(bytes.len()) else {
        return Ok(Err(Status::InternalFailure));
    };

    let mut address = 0;
    if len > 0 {
        // An `Arc` clone: cloning the `TypedFunc` itself costs far more.
        let Some(allocator) = c.data().allocator.clone() else {
            return Ok(Err(Status::InternalFailure));
        };
        address = allocator.call(&mut *c, len)?;
        if address == 0 {
            return Ok(Err(Status::InvalidMemoryAccess));
        }
        if let Err(status) = write(c, address, bytes) {
            return Ok(Err(status));
        }
    }

    Ok(write_u32(c, ptr_out, address as u32).and_then(|()| write_u32(c, len_out, len as u32)))
}

/// [`give`] for bytes the host copies out of its own state: `fill` appends
/// them to a buffer the VM reuses, so that handing them over allocates nothing
/// on the host. A status from `fill` is returned without calling the guest.
pub(crate) fn give_from(
    c: &mut C<'_>,
    ptr_out: i32,
    len_out: i32,
    fill: impl FnOnce(&C<'_>, &mut Vec<u8>) -> Result<(), Status>,
) -> wasmtime::Result<Result<(), Status>> {
    // Taken out of the state for the call: the guest's allocator may itself
    // call the host, which then works on a buffer of its own.
    let mut buffer = std::mem::take(&mut c.data_mut().scratch);
    buffer.clear();
    let result = match fill(c, &mut buffer) {
        Ok(()) => give(c, &buffer, ptr_out, len_out),
        Err(status) => Ok(Err(status)),
    };
    c.data_mut().scratch = buffer;
    result
}
