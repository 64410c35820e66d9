//! `/auth/login`, `/auth/logout`, `/auth/me`: sessions in an HttpOnly,
//! SameSite=Strict cookie.

use crate::caller::{Ctx, SESSION_COOKIE, session_cookie};
use crate::{ApiError, AppState, ClientAddr};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

#[derive(serde::Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

const MAX_BODY: usize = 16 * 1024;

pub async fn login(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    // Decided once per request by the limits middleware (trusted proxies).
    let addr: IpAddr = request
        .extensions()
        .get::<ClientAddr>()
        .map(|c| c.0)
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = axum::body::to_bytes(request.into_body(), MAX_BODY)
        .await
        .map_err(|_| ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            title: "Content Too Large",
            code: None,
            detail: format!("a login is at most {MAX_BODY} bytes"),
        })?;
    let credentials: Credentials = if is_json {
        serde_json::from_slice(&body)
            .map_err(|_| ApiError::bad_request("send {\"username\": ..., \"password\": ...}"))?
    } else {
        serde_urlencoded_form(&body)
            .ok_or_else(|| ApiError::bad_request("send the form fields username and password"))?
    };
    // User names are at most 64 characters: nothing longer is kept in memory.
    if credentials.username.is_empty() || credentials.username.chars().count() > 64 {
        return Err(ApiError::bad_request("a user name has 1 to 64 characters"));
    }
    // The attempt is reserved before the password is checked, so concurrent
    // guesses cannot slip past the count.
    let reserved = (state.limiter.reserve(&credentials.username, addr).await)
        .map_err(|e| ApiError::internal("login limiter", e))?;
    if let Err(wait) = reserved {
        let mut response = ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            title: "Too Many Requests",
            code: Some("login_locked"),
            detail: format!(
                "too many failed logins; try again in {} seconds",
                retry_after_secs(wait)
            ),
        }
        .into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after_secs(wait)),
        );
        return Ok(response);
    }
    let user = state
        .auth
        .verify(&credentials.username, &credentials.password)
        .await
        .map_err(|e| ApiError::internal("login", e))?;
    let Some(user) = user else {
        state
            .metrics
            .logins_failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // One answer for unknown users, disabled users and wrong passwords.
        return Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            title: "Unauthorized",
            code: Some("login_failed"),
            detail: "wrong user name or password".into(),
        });
    };
    (state.limiter.succeeded(&credentials.username, addr).await)
        .map_err(|e| ApiError::internal("login limiter", e))?;
    state
        .metrics
        .logins_succeeded
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let secret = state
        .auth
        .create_session(&user.name)
        .await
        .map_err(|e| ApiError::internal("session", e))?;
    let cookie = format!(
        "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        chizu_access::SESSION_LIFETIME_SECS,
        if state.config.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    let mut response =
        Json(serde_json::json!({ "user": user.name, "roles": user.roles })).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::internal("cookie", e))?,
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn retry_after_secs(wait: std::time::Duration) -> u64 {
    (wait.as_millis().div_ceil(1000) as u64).max(1)
}

/// Parses `username=..&password=..` (application/x-www-form-urlencoded).
fn serde_urlencoded_form(body: &[u8]) -> Option<Credentials> {
    let text = std::str::from_utf8(body).ok()?;
    let mut username = None;
    let mut password = None;
    for pair in text.split('&') {
        let (k, v) = pair.split_once('=')?;
        let v = percent_decode(v)?;
        match k {
            "username" => username = Some(v),
            "password" => password = Some(v),
            _ => {}
        }
    }
    Some(Credentials {
        username: username?,
        password: password?,
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

pub async fn logout(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(secret) = session_cookie(&headers) {
        state
            .auth
            .end_session(&secret)
            .await
            .map_err(|e| ApiError::internal("logout", e))?;
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&clear).map_err(|e| ApiError::internal("cookie", e))?,
    );
    Ok(response)
}

pub async fn me(ctx: Ctx) -> Response {
    let mut response = Json(serde_json::json!({
        "user": ctx.caller.user,
        "roles": ctx.caller.roles,
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
