//! discord: posts one alert to the Discord webhook in `DISCORD_WEBHOOK_URL` (environment only; its URL
//! holds a token, so it is never printed, not even in an error).

pub fn post(message: &serde_json::Value) -> Result<(), String> {
    let url = std::env::var("DISCORD_WEBHOOK_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .ok_or("DISCORD_WEBHOOK_URL is not set: the alert was not sent")?;
    let thread = std::env::var("DISCORD_THREAD_ID")
        .ok()
        .filter(|t| !t.trim().is_empty());
    let url = match thread {
        Some(thread) => format!("{}?thread_id={}", url.trim(), thread.trim()),
        None => url.trim().to_string(),
    };
    let agent = crate::http_agent(15);
    let response = agent
        .post(&url)
        .header("content-type", "application/json")
        .send(message.to_string())
        .map_err(|_| "Discord: no answer".to_string())?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("Discord answered {status}"))
    }
}
