//! The `env` host functions of proxy-wasm ABI 0.2.1.
//!
//! Each function checks every pointer and length the guest passes and answers
//! with the status Envoy answers with; a hostile guest gets a status code,
//! never a crash of the host. Only a trap inside the guest's own allocator
//! (called to hand data back) ends the call as a trap.

use wasmtime::{Caller, Linker};

use crate::abi::{
    decode_pairs, encode_pairs_into, BufferType, LogLevel, MapType, MetricType, Status, StreamType,
};
use crate::exchange::{CallRecord, LocalResponse};
use crate::guest;
use crate::properties;
use crate::shared::QueueOwner;
use crate::state::{PendingAnswer, PendingCall, VmState};

type C<'a> = Caller<'a, VmState>;
type Outcome = Result<(), Status>;
/// A host function result: a trap (outer `Err`) or a status for the guest.
type Traps = wasmtime::Result<Outcome>;

fn code(outcome: Outcome) -> i32 {
    match outcome {
        Ok(()) => Status::Ok.code(),
        Err(status) => status.code(),
    }
}

fn code_or_trap(result: Traps) -> wasmtime::Result<i32> {
    result.map(code)
}

/// Registers every `env` function on `linker`, recording each name in `names`.
pub(crate) fn add_to_linker(
    linker: &mut Linker<VmState>,
    names: &mut Vec<(String, String)>,
) -> wasmtime::Result<()> {
    macro_rules! env {
        ($name:literal, $func:expr) => {{
            linker.func_wrap("env", $name, $func)?;
            names.push(("env".to_owned(), $name.to_owned()));
        }};
    }

    env!("proxy_log", |mut c: C<'_>,
                       level: i32,
                       ptr: i32,
                       len: i32| {
        code(log(&mut c, level, ptr, len))
    });
    env!("proxy_get_log_level", |mut c: C<'_>, out: i32| {
        let level = c.data().config.log_level as u32;
        code(guest::write_u32(&mut c, out, level))
    });
    env!(
        "proxy_get_current_time_nanoseconds",
        |mut c: C<'_>, out: i32| {
            let now = c.data().shared.clock().wall_nanos();
            code(guest::write_u64(&mut c, out, now))
        }
    );
    env!(
        "proxy_set_tick_period_milliseconds",
        |mut c: C<'_>, period: i32| {
            c.data_mut().tick_period_ms = period as u32;
            Status::Ok.code()
        }
    );

    env!(
        "proxy_get_buffer_bytes",
        |mut c: C<'_>, kind: i32, start: i32, max: i32, out_ptr: i32, out_len: i32| {
            code_or_trap(get_buffer_bytes(&mut c, kind, start, max, out_ptr, out_len))
        }
    );
    env!(
        "proxy_set_buffer_bytes",
        |mut c: C<'_>, kind: i32, start: i32, size: i32, ptr: i32, len: i32| {
            code(set_buffer_bytes(&mut c, kind, start, size, ptr, len))
        }
    );

    env!(
        "proxy_get_header_map_pairs",
        |mut c: C<'_>, map: i32, out_ptr: i32, out_len: i32| {
            code_or_trap(get_header_map_pairs(&mut c, map, out_ptr, out_len))
        }
    );
    env!(
        "proxy_set_header_map_pairs",
        |mut c: C<'_>, map: i32, ptr: i32, len: i32| {
            code(set_header_map_pairs(&mut c, map, ptr, len))
        }
    );
    env!(
        "proxy_get_header_map_value",
        |mut c: C<'_>, map: i32, key_ptr: i32, key_len: i32, out_ptr: i32, out_len: i32| {
            code_or_trap(get_header_map_value(
                &mut c, map, key_ptr, key_len, out_ptr, out_len,
            ))
        }
    );
    env!(
        "proxy_replace_header_map_value",
        |mut c: C<'_>, map: i32, key_ptr: i32, key_len: i32, value_ptr: i32, value_len: i32| {
            code(edit_header(
                &mut c,
                map,
                key_ptr,
                key_len,
                Some((value_ptr, value_len)),
                Edit::Replace,
            ))
        }
    );
    env!(
        "proxy_add_header_map_value",
        |mut c: C<'_>, map: i32, key_ptr: i32, key_len: i32, value_ptr: i32, value_len: i32| {
            code(edit_header(
                &mut c,
                map,
                key_ptr,
                key_len,
                Some((value_ptr, value_len)),
                Edit::Add,
            ))
        }
    );
    env!(
        "proxy_remove_header_map_value",
        |mut c: C<'_>, map: i32, key_ptr: i32, key_len: i32| {
            code(edit_header(
                &mut c,
                map,
                key_ptr,
                key_len,
                None,
                Edit::Remove,
            ))
        }
    );

    env!(
        "proxy_get_property",
        |mut c: C<'_>, path_ptr: i32, path_len: i32, out_ptr: i32, out_len: i32| {
            code_or_trap(get_property(&mut c, path_ptr, path_len, out_ptr, out_len))
        }
    );
    env!(
        "proxy_set_property",
        |mut c: C<'_>, path_ptr: i32, path_len: i32, value_ptr: i32, value_len: i32| {
            code(set_property(
                &mut c, path_ptr, path_len, value_ptr, value_len,
            ))
        }
    );

    env!(
        "proxy_get_shared_data",
        |mut c: C<'_>, key_ptr: i32, key_len: i32, out_ptr: i32, out_len: i32, cas_ptr: i32| {
            code_or_trap(get_shared_data(
                &mut c, key_ptr, key_len, out_ptr, out_len, cas_ptr,
            ))
        }
    );
    env!(
        "proxy_set_shared_data",
        |mut c: C<'_>, key_ptr: i32, key_len: i32, value_ptr: i32, value_len: i32, cas: i32| {
            code(set_shared_data(
                &mut c, key_ptr, key_len, value_ptr, value_len, cas as u32,
            ))
        }
    );

    env!(
        "proxy_register_shared_queue",
        |mut c: C<'_>, name_ptr: i32, name_len: i32, out: i32| {
            code(register_queue(&mut c, name_ptr, name_len, out))
        }
    );
    env!(
        "proxy_resolve_shared_queue",
        |mut c: C<'_>, vm_ptr: i32, vm_len: i32, name_ptr: i32, name_len: i32, out: i32| {
            code(resolve_queue(
                &mut c, vm_ptr, vm_len, name_ptr, name_len, out,
            ))
        }
    );
    env!(
        "proxy_enqueue_shared_queue",
        |mut c: C<'_>, token: i32, ptr: i32, len: i32| { code(enqueue(&mut c, token, ptr, len)) }
    );
    env!(
        "proxy_dequeue_shared_queue",
        |mut c: C<'_>, token: i32, out_ptr: i32, out_len: i32| {
            code_or_trap(dequeue(&mut c, token, out_ptr, out_len))
        }
    );

    env!("proxy_continue_stream", |mut c: C<'_>, kind: i32| {
        code(continue_stream(&mut c, kind))
    });
    env!("proxy_close_stream", |mut c: C<'_>, kind: i32| {
        code(close_stream(&mut c, kind))
    });
    env!(
        "proxy_send_local_response",
        |mut c: C<'_>,
         status: i32,
         details_ptr: i32,
         details_len: i32,
         body_ptr: i32,
         body_len: i32,
         headers_ptr: i32,
         headers_len: i32,
         grpc_status: i32| {
            code(send_local_response(
                &mut c,
                status,
                (details_ptr, details_len),
                (body_ptr, body_len),
                (headers_ptr, headers_len),
                grpc_status,
            ))
        }
    );

    env!("proxy_http_call", |mut c: C<'_>,
                             up_ptr: i32,
                             up_len: i32,
                             h_ptr: i32,
                             h_len: i32,
                             b_ptr: i32,
                             b_len: i32,
                             t_ptr: i32,
                             t_len: i32,
                             _timeout_ms: i32,
                             out: i32| {
        code(http_call(
            &mut c,
            (up_ptr, up_len),
            (h_ptr, h_len),
            (b_ptr, b_len),
            (t_ptr, t_len),
            out,
        ))
    });
    env!("proxy_grpc_call", |mut c: C<'_>,
                             up_ptr: i32,
                             up_len: i32,
                             s_ptr: i32,
                             s_len: i32,
                             m_ptr: i32,
                             m_len: i32,
                             md_ptr: i32,
                             md_len: i32,
                             msg_ptr: i32,
                             msg_len: i32,
                             _timeout_ms: i32,
                             out: i32| {
        code(grpc_call(
            &mut c,
            [
                (up_ptr, up_len),
                (s_ptr, s_len),
                (m_ptr, m_len),
                (md_ptr, md_len),
                (msg_ptr, msg_len),
            ],
            out,
        ))
    });
    // Streaming gRPC is not simulated: a stream cannot be opened, so sends,
    // cancels and closes find no such stream.
    env!(
        "proxy_grpc_stream",
        |_c: C<'_>,
         _a: i32,
         _b: i32,
         _d: i32,
         _e: i32,
         _f: i32,
         _g: i32,
         _h: i32,
         _i: i32,
         _out: i32| { Status::InternalFailure.code() }
    );
    env!("proxy_grpc_send", |_c: C<'_>,
                             _token: i32,
                             _ptr: i32,
                             _len: i32,
                             _end: i32| {
        Status::NotFound.code()
    });
    env!("proxy_grpc_cancel", |_c: C<'_>, _token: i32| {
        Status::NotFound.code()
    });
    env!("proxy_grpc_close", |_c: C<'_>, _token: i32| {
        Status::NotFound.code()
    });
    env!(
        "proxy_get_status",
        |mut c: C<'_>, code_ptr: i32, out_ptr: i32, out_len: i32| {
            code_or_trap(get_status(&mut c, code_ptr, out_ptr, out_len))
        }
    );

    env!(
        "proxy_set_effective_context",
        |mut c: C<'_>, context_id: i32| { code(set_effective_context(&mut c, context_id as u32)) }
    );
    env!("proxy_done", |_c: C<'_>| Status::Ok.code());
    env!(
        "proxy_call_foreign_function",
        |_c: C<'_>, _a: i32, _b: i32, _d: i32, _e: i32, _f: i32, _g: i32| {
            // Envoy registers a few foreign functions (compression, expression
            // evaluation); the simulator registers none.
            Status::NotFound.code()
        }
    );

    env!(
        "proxy_define_metric",
        |mut c: C<'_>, kind: i32, name_ptr: i32, name_len: i32, out: i32| {
            code(define_metric(&mut c, kind, name_ptr, name_len, out))
        }
    );
    env!(
        "proxy_increment_metric",
        |c: C<'_>, id: i32, offset: i64| {
            c.data().shared.increment_metric(id as u32, offset).code()
        }
    );
    env!("proxy_record_metric", |c: C<'_>, id: i32, value: i64| {
        c.data()
            .shared
            .record_metric(id as u32, value as u64)
            .code()
    });
    env!("proxy_get_metric", |mut c: C<'_>, id: i32, out: i32| {
        code(get_metric(&mut c, id, out))
    });

    Ok(())
}

fn log(c: &mut C<'_>, level: i32, ptr: i32, len: i32) -> Outcome {
    let level = LogLevel::from_guest(level).ok_or(Status::BadArgument)?;
    let message = guest::view(c, ptr, len)?;
    // The line is dropped anyway below the level; skip making its text.
    if level >= c.data().config.log_level {
        c.data()
            .log(level, String::from_utf8_lossy(message).into_owned());
    }
    Ok(())
}

fn buffer_contents(state: &VmState, kind: BufferType) -> Option<&[u8]> {
    match kind {
        BufferType::HttpRequestBody => state.stream().map(|s| s.request_body.as_slice()),
        BufferType::HttpResponseBody => state.stream().map(|s| s.response_body.as_slice()),
        BufferType::HttpCallResponseBody => state.call_response.as_ref().map(|a| a.body.as_slice()),
        BufferType::GrpcReceiveBuffer => state.grpc_message.as_deref(),
        BufferType::VmConfiguration if state.config_buffer == Some(kind) => {
            Some(state.config.vm_configuration.as_slice())
        }
        BufferType::PluginConfiguration if state.config_buffer == Some(kind) => {
            Some(state.config.plugin_configuration.as_slice())
        }
        _ => None,
    }
}

fn get_buffer_bytes(
    c: &mut C<'_>,
    kind: i32,
    start: i32,
    max: i32,
    out_ptr: i32,
    out_len: i32,
) -> Traps {
    let Some(kind) = BufferType::from_guest(kind) else {
        return Ok(Err(Status::BadArgument));
    };
    let Some(contents) = buffer_contents(c.data(), kind) else {
        return Ok(Err(Status::NotFound));
    };

    // Envoy clamps the window to the buffer and answers Ok with nothing
    // written when it is empty; the SDK reads that as "no bytes".
    let start = start as u32 as usize;
    let end = start
        .saturating_add(max as u32 as usize)
        .min(contents.len());
    if contents.get(start..end).is_none_or(<[u8]>::is_empty) {
        return Ok(Ok(()));
    }
    guest::give_from(c, out_ptr, out_len, |c, out| {
        let window = buffer_contents(c.data(), kind).and_then(|bytes| bytes.get(start..end));
        out.extend_from_slice(window.unwrap_or_default());
        Ok(())
    })
}

fn set_buffer_bytes(
    c: &mut C<'_>,
    kind: i32,
    start: i32,
    size: i32,
    ptr: i32,
    len: i32,
) -> Outcome {
    let kind = BufferType::from_guest(kind).ok_or(Status::BadArgument)?;
    let data = guest::read(c, ptr, len)?;
    let stream = c.data_mut().stream_mut().ok_or(Status::NotFound)?;
    let buffer = match kind {
        BufferType::HttpRequestBody => &mut stream.request_body,
        BufferType::HttpResponseBody => &mut stream.response_body,
        _ => return Err(Status::BadArgument),
    };

    // Envoy's rule: start 0 drains `size` bytes and prepends the data; a start
    // at or past the end appends; anything in between is refused.
    let start = start as u32 as usize;
    if start == 0 {
        let drain = (size as u32 as usize).min(buffer.len());
        buffer.splice(..drain, data);
        Ok(())
    } else if start >= buffer.len() {
        buffer.extend_from_slice(&data);
        Ok(())
    } else {
        Err(Status::BadArgument)
    }
}

fn get_header_map_pairs(c: &mut C<'_>, map: i32, out_ptr: i32, out_len: i32) -> Traps {
    let Some(map) = MapType::from_guest(map) else {
        return Ok(Err(Status::BadArgument));
    };
    // A map that does not exist yet (response headers during the request)
    // reads as empty, as in Envoy.
    guest::give_from(c, out_ptr, out_len, |c, out| {
        encode_pairs_into(
            c.data().map(map).map(Vec::as_slice).unwrap_or_default(),
            out,
        );
        Ok(())
    })
}

fn set_header_map_pairs(c: &mut C<'_>, map: i32, ptr: i32, len: i32) -> Outcome {
    let map = MapType::from_guest(map).ok_or(Status::BadArgument)?;
    let encoded = guest::read(c, ptr, len)?;
    let pairs = decode_pairs(&encoded).map_err(|_| Status::BadArgument)?;
    let target = c.data_mut().map_mut(map).ok_or(Status::BadArgument)?;
    // Envoy removes every entry, then adds the pairs in order.
    *target = pairs
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect();
    Ok(())
}

fn get_header_map_value(
    c: &mut C<'_>,
    map: i32,
    key_ptr: i32,
    key_len: i32,
    out_ptr: i32,
    out_len: i32,
) -> Traps {
    let Some(map) = MapType::from_guest(map) else {
        return Ok(Err(Status::BadArgument));
    };
    guest::give_from(c, out_ptr, out_len, |c, out| {
        let key = guest::view(c, key_ptr, key_len)?;
        // With several entries of one name, Envoy returns the first only; a
        // filter that must see duplicates has to read all pairs.
        let (_, value) = c
            .data()
            .map(map)
            .and_then(|pairs| pairs.iter().find(|(k, _)| is_lowercase_of(k, key)))
            .ok_or(Status::NotFound)?;
        out.extend_from_slice(value);
        Ok(())
    })
}

/// Whether `name` is `key` in lower case (Envoy looks names up in lower case).
fn is_lowercase_of(name: &[u8], key: &[u8]) -> bool {
    name.len() == key.len()
        && name
            .iter()
            .zip(key)
            .all(|(n, k)| *n == k.to_ascii_lowercase())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Edit {
    Add,
    Replace,
    Remove,
}

fn edit_header(
    c: &mut C<'_>,
    map: i32,
    key_ptr: i32,
    key_len: i32,
    value: Option<(i32, i32)>,
    edit: Edit,
) -> Outcome {
    let map = MapType::from_guest(map).ok_or(Status::BadArgument)?;
    let value = match value {
        Some((ptr, len)) => guest::read(c, ptr, len)?,
        None => Vec::new(),
    };
    let (key, state) = guest::view_mut(c, key_ptr, key_len as u32 as usize)?;
    let target = state.map_mut(map).ok_or(Status::BadArgument)?;
    // Envoy keeps header names in lower case.
    let named = |k: &Vec<u8>| is_lowercase_of(k, key);

    match edit {
        Edit::Add => target.push((key.to_ascii_lowercase(), value)),
        // Envoy's `setCopy`: the first entry of the name takes the value in
        // place, later ones go; a missing name is appended.
        Edit::Replace => match target.iter().position(|(k, _)| named(k)) {
            Some(first) => {
                let mut index = 0;
                target.retain(|(k, _)| {
                    let keep = !named(k) || index == first;
                    index += 1;
                    keep
                });
                if let Some(entry) = target.get_mut(first) {
                    entry.1 = value;
                }
            }
            None => target.push((key.to_ascii_lowercase(), value)),
        },
        Edit::Remove => target.retain(|(k, _)| !named(k)),
    }
    Ok(())
}

fn get_property(c: &mut C<'_>, path_ptr: i32, path_len: i32, out_ptr: i32, out_len: i32) -> Traps {
    let path = match guest::read(c, path_ptr, path_len) {
        Ok(path) => properties::dotted(&path),
        Err(status) => return Ok(Err(status)),
    };
    match properties::lookup(c.data(), &path) {
        Some(value) => guest::give(c, &value, out_ptr, out_len),
        None => Ok(Err(Status::NotFound)),
    }
}

fn set_property(
    c: &mut C<'_>,
    path_ptr: i32,
    path_len: i32,
    value_ptr: i32,
    value_len: i32,
) -> Outcome {
    let path = properties::dotted(&guest::read(c, path_ptr, path_len)?);
    let value = guest::read(c, value_ptr, value_len)?;
    let state = c.data_mut();
    match state.stream_mut() {
        Some(stream) => stream.properties.insert(path, value),
        None => state.root_properties.insert(path, value),
    };
    Ok(())
}

fn get_shared_data(
    c: &mut C<'_>,
    key_ptr: i32,
    key_len: i32,
    out_ptr: i32,
    out_len: i32,
    cas_ptr: i32,
) -> Traps {
    let mut cas = 0;
    let given = guest::give_from(c, out_ptr, out_len, |c, out| {
        let key = guest::view(c, key_ptr, key_len)?;
        let state = c.data();
        cas = state.shared.read_data(&state.config.vm_id, key, out)?;
        Ok(())
    })?;
    if let Err(status) = given {
        return Ok(Err(status));
    }
    Ok(guest::write_u32(c, cas_ptr, cas))
}

fn set_shared_data(
    c: &mut C<'_>,
    key_ptr: i32,
    key_len: i32,
    value_ptr: i32,
    value_len: i32,
    cas: u32,
) -> Outcome {
    let key = guest::view(c, key_ptr, key_len)?;
    let value = guest::view(c, value_ptr, value_len)?;
    let state = c.data();
    match state.shared.set_data(&state.config.vm_id, key, value, cas) {
        Status::Ok => Ok(()),
        status => Err(status),
    }
}

fn register_queue(c: &mut C<'_>, name_ptr: i32, name_len: i32, out: i32) -> Outcome {
    let name = guest::read(c, name_ptr, name_len)?;
    let state = c.data();
    let owner = QueueOwner {
        worker: state.worker,
        root_context_id: state.root_context_id,
    };
    let token = state
        .shared
        .register_queue(&state.config.vm_id, &name, owner);
    guest::write_u32(c, out, token)
}

fn resolve_queue(
    c: &mut C<'_>,
    vm_ptr: i32,
    vm_len: i32,
    name_ptr: i32,
    name_len: i32,
    out: i32,
) -> Outcome {
    let vm_id = guest::read(c, vm_ptr, vm_len)?;
    let name = guest::read(c, name_ptr, name_len)?;
    let token = c
        .data()
        .shared
        .resolve_queue(&vm_id, &name)
        .ok_or(Status::NotFound)?;
    guest::write_u32(c, out, token)
}

fn enqueue(c: &mut C<'_>, token: i32, ptr: i32, len: i32) -> Outcome {
    let value = guest::read(c, ptr, len)?;
    match c.data().shared.enqueue(token as u32, value) {
        Status::Ok => Ok(()),
        status => Err(status),
    }
}

fn dequeue(c: &mut C<'_>, token: i32, out_ptr: i32, out_len: i32) -> Traps {
    match c.data().shared.dequeue(token as u32) {
        Ok(value) => guest::give(c, &value, out_ptr, out_len),
        Err(status) => Ok(Err(status)),
    }
}

fn continue_stream(c: &mut C<'_>, kind: i32) -> Outcome {
    let kind = StreamType::from_guest(kind).ok_or(Status::BadArgument)?;
    let stream = c.data_mut().stream_mut().ok_or(Status::NotFound)?;
    match kind {
        StreamType::HttpRequest => stream.resume_request = true,
        StreamType::HttpResponse => stream.resume_response = true,
        // TCP streams are not simulated.
        StreamType::Downstream | StreamType::Upstream => return Err(Status::BadArgument),
    }
    Ok(())
}

fn close_stream(c: &mut C<'_>, kind: i32) -> Outcome {
    let kind = StreamType::from_guest(kind).ok_or(Status::BadArgument)?;
    let stream = c.data_mut().stream_mut().ok_or(Status::NotFound)?;
    match kind {
        StreamType::HttpRequest | StreamType::HttpResponse => stream.reset = true,
        StreamType::Downstream | StreamType::Upstream => return Err(Status::BadArgument),
    }
    Ok(())
}

fn send_local_response(
    c: &mut C<'_>,
    status: i32,
    details: (i32, i32),
    body: (i32, i32),
    headers: (i32, i32),
    grpc_status: i32,
) -> Outcome {
    let details = guest::read(c, details.0, details.1)?;
    let body = guest::read(c, body.0, body.1)?;
    let headers = decode_pairs(&guest::read(c, headers.0, headers.1)?)
        .map_err(|_| Status::BadArgument)?
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let state = c.data_mut();
    let stream = state.stream_mut().ok_or(Status::NotFound)?;

    let reply = LocalResponse {
        status: status as u32,
        details: String::from_utf8_lossy(&details).into_owned(),
        headers,
        body,
        grpc_status,
    };
    if stream.local_response.is_some() {
        // Envoy sends the first local reply; later ones have no effect.
        state
            .notes
            .push("a second proxy_send_local_response was ignored".to_owned());
        return Ok(());
    }
    stream.local_response = Some(reply);
    Ok(())
}

fn http_call(
    c: &mut C<'_>,
    upstream: (i32, i32),
    headers: (i32, i32),
    body: (i32, i32),
    trailers: (i32, i32),
    out: i32,
) -> Outcome {
    let upstream = String::from_utf8_lossy(&guest::read(c, upstream.0, upstream.1)?).into_owned();
    let headers =
        decode_pairs(&guest::read(c, headers.0, headers.1)?).map_err(|_| Status::BadArgument)?;
    let body = guest::read(c, body.0, body.1)?;
    decode_pairs(&guest::read(c, trailers.0, trailers.1)?).map_err(|_| Status::BadArgument)?;

    // Envoy refuses a call without the pseudo-headers it needs to route it.
    let has = |name: &[u8]| headers.iter().any(|(k, _)| k.as_slice() == name);
    if !(has(b":method") && has(b":path") && has(b":authority")) {
        return Err(Status::BadArgument);
    }
    let state = c.data_mut();
    let answer = state
        .config
        .http_answers
        .get(&upstream)
        .cloned()
        .ok_or(Status::BadArgument)?;

    let token = state.next_token();
    let target = headers
        .iter()
        .find(|(k, _)| k.as_slice() == b":path")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    state.calls.push(CallRecord {
        kind: "http",
        upstream,
        target,
        token,
        headers,
        body,
    });
    state.pending_calls.push_back(PendingCall {
        token,
        context_id: state.effective_context,
        answer: PendingAnswer::Http(answer),
    });
    guest::write_u32(c, out, token)
}

fn grpc_call(c: &mut C<'_>, parts: [(i32, i32); 5], out: i32) -> Outcome {
    let [upstream, service, method, metadata, message] = parts;
    let upstream = String::from_utf8_lossy(&guest::read(c, upstream.0, upstream.1)?).into_owned();
    let service = String::from_utf8_lossy(&guest::read(c, service.0, service.1)?).into_owned();
    let method = String::from_utf8_lossy(&guest::read(c, method.0, method.1)?).into_owned();
    let metadata =
        decode_pairs(&guest::read(c, metadata.0, metadata.1)?).map_err(|_| Status::BadArgument)?;
    let message = guest::read(c, message.0, message.1)?;

    let target = format!("{service}/{method}");
    let state = c.data_mut();
    let answer = state
        .config
        .grpc_answers
        .get(&target)
        .cloned()
        .ok_or(Status::BadArgument)?;
    let token = state.next_token();
    state.calls.push(CallRecord {
        kind: "grpc",
        upstream,
        target,
        token,
        headers: metadata,
        body: message,
    });
    state.pending_calls.push_back(PendingCall {
        token,
        context_id: state.effective_context,
        answer: PendingAnswer::Grpc(answer),
    });
    guest::write_u32(c, out, token)
}

fn get_status(c: &mut C<'_>, code_ptr: i32, out_ptr: i32, out_len: i32) -> Traps {
    let (status, message) = c.data().grpc_status.clone();
    if let Err(status) = guest::write_u32(c, code_ptr, status) {
        return Ok(Err(status));
    }
    guest::give(c, &message, out_ptr, out_len)
}

fn set_effective_context(c: &mut C<'_>, context_id: u32) -> Outcome {
    let state = c.data_mut();
    let known = context_id == state.root_context_id
        || state
            .stream
            .as_ref()
            .is_some_and(|s| s.context_id == context_id);
    if !known {
        return Err(Status::BadArgument);
    }
    state.effective_context = context_id;
    Ok(())
}

fn define_metric(c: &mut C<'_>, kind: i32, name_ptr: i32, name_len: i32, out: i32) -> Outcome {
    let kind = MetricType::from_guest(kind).ok_or(Status::BadArgument)?;
    let name = guest::read(c, name_ptr, name_len)?;
    let id = c.data().shared.define_metric(kind, &name);
    guest::write_u32(c, out, id)
}

fn get_metric(c: &mut C<'_>, id: i32, out: i32) -> Outcome {
    let value = c.data().shared.get_metric(id as u32)?;
    guest::write_u64(c, out, value)
}
