//! The shop's HTML pages: plain HTML with inline style, no scripts and
//! nothing from elsewhere. Pure: the handlers in `demo` pass what to show.

/// What the shop's page offers; the cart API takes any item name.
pub const PRODUCTS: [&str; 4] = ["apple", "bread", "cheese", "coffee"];

pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One page of the shop: a title, the links every page has, and `main`
/// (already HTML). Inline style only, so the page needs nothing else.
fn page(name: &str, title: &str, main: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title} · vakt demo shop</title>\n\
         <style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}nav a{{margin-right:1em}}li{{margin:.3em 0}}form{{display:inline}}</style>\n\
         </head><body>\n<nav><a href=\"/\">Shop</a><a href=\"/cart/view\">Cart</a><a href=\"/cart\">Cart as JSON</a><a href=\"/health\">Health</a><a href=\"/echo\">Echo your request</a></nav>\n\
         <h1>{title}</h1>\n<p>Served by <strong>{}</strong>.</p>\n{main}</body></html>\n",
        escape_html(name)
    )
}

/// The catalogue; `store` says where carts live.
pub fn shop(name: &str, items_in_cart: usize, store: &str) -> String {
    let mut main = String::from("<ul>\n");
    for p in PRODUCTS {
        main.push_str(&format!(
            "<li>{p} <form method=\"post\" action=\"/cart?item={p}\"><button type=\"submit\">Add to cart</button></form></li>\n"
        ));
    }
    main.push_str(&format!(
        "</ul>\n<p>Your cart holds {items_in_cart} item(s): <a href=\"/cart/view\">view cart</a>.</p>\n<p>{store}</p>\n"
    ));
    page(name, "vakt demo shop", &main)
}

pub fn cart(name: &str, items: &[String]) -> String {
    let main = if items.is_empty() {
        "<p>Your cart is empty. <a href=\"/\">Back to the shop</a>.</p>\n".to_string()
    } else {
        let list: String = items
            .iter()
            .map(|i| format!("<li>{}</li>\n", escape_html(i)))
            .collect();
        format!(
            "<ul>\n{list}</ul>\n<p><form method=\"post\" action=\"/order\"><button type=\"submit\">Place the order</button></form> \
             <a href=\"/\">Back to the shop</a>.</p>\n"
        )
    };
    page(name, "Your cart", &main)
}
