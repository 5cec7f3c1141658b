//! link: GitHub's pagination header. Page-numbered lists (`?page=2`) and cursor lists (hook deliveries:
//! `?cursor=…`) both name the next page in `Link: <url>; rel="next"`, so following it handles both.

/// The `rel="next"` URL of a `Link` header, if any.
pub fn next_url(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let mut pieces = part.split(';');
        let url = pieces.next()?.trim();
        let url = url.strip_prefix('<')?.strip_suffix('>')?;
        pieces
            .any(|p| {
                let p = p.trim();
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| url.to_string())
    })
}

/// The value of one query parameter of a URL (e.g. the `cursor` of a next link).
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_next_page_in_either_style() {
        let pages = r#"<https://api.github.com/repositories/1/pulls?page=2>; rel="next", <https://api.github.com/repositories/1/pulls?page=5>; rel="last""#;
        assert_eq!(
            next_url(pages).as_deref(),
            Some("https://api.github.com/repositories/1/pulls?page=2")
        );
        let cursor = r#"<https://api.github.com/orgs/o/hooks/1/deliveries?per_page=2&cursor=v1_123>; rel="next""#;
        let next = next_url(cursor).unwrap();
        assert_eq!(query_param(&next, "cursor").as_deref(), Some("v1_123"));
        assert_eq!(query_param(&next, "per_page").as_deref(), Some("2"));
        assert_eq!(next_url(r#"<https://x/?page=1>; rel="prev""#), None);
        assert_eq!(next_url(""), None);
        assert_eq!(next_url("garbage; rel=\"next\""), None);
    }
}
