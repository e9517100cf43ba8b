//! The game's HTML page (`game/page.html`, embedded): the login form, the play page with
//! the events, and the refusal of a bad token. Pure code.

use crate::front::WebResponse;

const TEMPLATE: &str = include_str!("../../page.html");

/// Seconds between refreshes of a page without scripts.
pub const REFRESH_SECS: u32 = 10;

/// One line of a player's scrollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// Counts up per player; lines above the last page's `seen` are new.
    pub seq: u64,
    /// The event's kind (`said`, `room`, ...), or `typed` for the player's own command.
    pub kind: &'static str,
    pub text: String,
}

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

struct Fill<'a> {
    base: &'a str,
    live: bool,
    /// The number of the last scrollback line shown.
    latest: u64,
    status: String,
    events: String,
    form: String,
}

fn render(status: u16, fill: Fill<'_>) -> WebResponse {
    let refresh = if fill.live {
        format!("<noscript><meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\"></noscript>")
    } else {
        String::new()
    };
    let body = TEMPLATE
        .replace("{{REFRESH}}", &refresh)
        .replace("{{LIVE}}", if fill.live { "1" } else { "0" })
        .replace("{{LATEST}}", &fill.latest.to_string())
        .replace("{{BASE}}", &escape(fill.base))
        .replace("{{STATUS}}", &fill.status)
        .replace("{{EVENTS}}", &fill.events)
        .replace("{{FORM}}", &fill.form);
    WebResponse {
        status,
        headers: vec![
            (
                "Content-Type".to_string(),
                "text/html; charset=utf-8".to_string(),
            ),
            ("Cache-Control".to_string(), "no-store".to_string()),
        ],
        body: body.into_bytes(),
    }
}

fn login_form(base: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\" id=\"login\">\
         <input type=\"text\" name=\"name\" placeholder=\"Choose a name\" maxlength=\"20\" autofocus required>\
         <button type=\"submit\">Enter</button></form>",
        escape(base)
    )
}

/// The login form; `notice` says why the last attempt failed.
pub fn login(base: &str, notice: Option<(u16, &str)>) -> WebResponse {
    let (status, events) = match notice {
        Some((status, why)) => (
            status,
            format!("<div class=\"ev ev-error notice\">{}</div>", escape(why)),
        ),
        None => (200, String::new()),
    };
    let welcome = "<div class=\"ev\">You stand before the Listening Gate of a web server that has \
        grown a dungeon. Choose a name to enter. Your browser keeps a signed token, so you can \
        come back to where you left off.</div>";
    render(
        status,
        Fill {
            base,
            live: false,
            latest: 0,
            status: "Not logged in.".to_string(),
            events: format!("{welcome}{events}"),
            form: login_form(base),
        },
    )
}

/// A token that does not verify (403).
pub fn refused(base: &str, why: &str) -> WebResponse {
    let events = format!(
        "<div class=\"ev ev-error notice\">Your token was refused: {}. It has been cleared; \
         log in again to continue.</div>",
        escape(why)
    );
    render(
        403,
        Fill {
            base,
            live: false,
            latest: 0,
            status: "Token refused.".to_string(),
            events,
            form: login_form(base),
        },
    )
}

/// The play page: the scrollback (lines after `seen` marked new) and the command box.
/// After the player has left, the page offers to enter again and stops refreshing.
/// `latest` is the last line's number, from which the page's websocket continues.
pub fn play(
    base: &str,
    name: &str,
    lines: &[Shown],
    seen: u64,
    latest: u64,
    ended: bool,
) -> WebResponse {
    let mut events = String::new();
    for line in lines {
        let age = if line.seq > seen { "new" } else { "old" };
        events.push_str(&format!(
            "<div class=\"ev ev-{} {age}\">{}</div>",
            line.kind,
            escape(&line.text)
        ));
    }
    let base_attr = escape(base);
    let form = if ended {
        format!("<form method=\"get\" action=\"{base_attr}\" id=\"again\"><button type=\"submit\">Enter again</button></form>")
    } else {
        format!(
            "<form method=\"post\" action=\"{base_attr}\" id=\"play\">\
             <input type=\"text\" name=\"command\" placeholder=\"look, north, take lamp, say hello, help\" \
             maxlength=\"400\" autocomplete=\"off\" autofocus>\
             <button type=\"submit\">Do it</button></form>"
        )
    };
    let status = format!("Playing as <b>{}</b>.", escape(name));
    render(
        200,
        Fill {
            base,
            live: !ended,
            latest,
            status,
            events,
            form,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(response: &WebResponse) -> String {
        String::from_utf8(response.body.clone()).unwrap()
    }

    #[test]
    fn the_play_page_escapes_and_marks_new_lines() {
        let lines = [
            Shown {
                seq: 1,
                kind: "room",
                text: "Hall".to_string(),
            },
            Shown {
                seq: 2,
                kind: "said",
                text: "eve says: <script>".to_string(),
            },
        ];
        let page = text(&play("/ogi/game", "bob", &lines, 1, 2, false));
        assert!(page.contains("<div class=\"ev ev-room old\">Hall</div>"));
        assert!(page.contains("<div class=\"ev ev-said new\">eve says: &lt;script&gt;</div>"));
        assert!(page.contains("http-equiv=\"refresh\""));
        assert!(page.contains("data-live=\"1\""));
        assert!(page.contains("Playing as <b>bob</b>"));
        assert!(!page.contains("{{"));
    }

    #[test]
    fn a_finished_page_does_not_refresh() {
        let page = text(&play("/ogi/game", "bob", &[], 0, 0, true));
        assert!(!page.contains("http-equiv=\"refresh\""));
        assert!(page.contains("Enter again"));
    }

    #[test]
    fn login_and_refusal() {
        let page = login("/ogi/game", Some((409, "that name is taken")));
        assert_eq!(page.status, 409);
        assert!(text(&page).contains("that name is taken"));
        let refused = refused("/ogi/game", "bad");
        assert_eq!(refused.status, 403);
        assert!(text(&refused).contains("name=\"name\""));
    }
}
