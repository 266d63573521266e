/*
 * NPS Loop in-app widget. No framework, no cookies.
 *
 *   <script src="https://YOUR-NPS-LOOP/static/js/nps-widget.js" defer></script>
 *   <script>
 *     window.addEventListener("load", function () {
 *       NPSLoop.init({
 *         key: "pk_…",                  // your publishable key
 *         email: "ann@customer.example", // the signed-in user
 *         signature: "…",               // hex HMAC-SHA256(identity secret, email), made on your server
 *         endpoint: "https://YOUR-NPS-LOOP" // optional: defaults to this script's origin
 *       });
 *     });
 *   </script>
 *
 * When the user is due, a card asks the 0–10 question at the bottom right. Escape or the
 * close button dismisses it (which counts as asked); an answer shows the thank-you.
 */
(function (window, document) {
  "use strict";
  var P = "npsloop-w-"; // class prefix: nothing here touches the host page's styles
  var currentScript = document.currentScript;

  function origin() {
    try { return new URL(currentScript.src).origin; } catch (e) { return ""; }
  }

  function css(color) {
    return "." + P + "card{position:fixed;right:16px;bottom:16px;z-index:2147483000;max-width:360px;" +
      "width:calc(100% - 32px);background:#fff;color:#111827;border-radius:12px;padding:16px 16px 12px;" +
      "box-shadow:0 10px 30px rgba(0,0,0,.2);font:14px/1.4 system-ui,-apple-system,sans-serif;" +
      "border-top:4px solid " + color + "}" +
      "." + P + "q{font-weight:600;margin:0 24px 12px 0;font-size:15px}" +
      "." + P + "close{position:absolute;top:8px;right:8px;border:0;background:none;font-size:20px;" +
      "line-height:1;cursor:pointer;color:#6B7280;padding:4px 8px}" +
      "." + P + "scale{display:flex;gap:3px;flex-wrap:nowrap}" +
      "." + P + "n{flex:1;min-width:0;padding:8px 0;border:1px solid #D1D5DB;border-radius:6px;" +
      "background:#F9FAFB;cursor:pointer;font:inherit;color:inherit}" +
      "." + P + "n[aria-pressed=true]{background:" + color + ";color:#fff;border-color:" + color + "}" +
      "." + P + "ends{display:flex;justify-content:space-between;font-size:12px;color:#6B7280;margin:4px 0 8px}" +
      "." + P + "c{width:100%;box-sizing:border-box;min-height:64px;margin:8px 0;padding:6px;" +
      "border:1px solid #D1D5DB;border-radius:6px;font:inherit}" +
      "." + P + "send{background:" + color + ";color:#fff;border:0;border-radius:6px;padding:8px 14px;" +
      "cursor:pointer;font:inherit}" +
      "." + P + "card :focus-visible{outline:2px solid " + color + ";outline-offset:2px}" +
      "." + P + "hidden{display:none}";
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = P + cls;
    if (text) node.textContent = text;
    return node;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "omit", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }).then(function (r) { return r.json(); });
  }

  function show(base, config) {
    var s = config.survey, ui = s.ui || {}, token = config.token, score = null, done = false;
    var previousFocus = document.activeElement;
    var style = el("style");
    style.textContent = css(/^#[0-9a-fA-F]{6}$/.test(s.brand_color) ? s.brand_color : "#4F46E5");
    document.head.appendChild(style);

    var card = el("div", "card");
    var qid = P + "q-" + Math.random().toString(36).slice(2);
    card.setAttribute("role", "dialog");
    card.setAttribute("aria-modal", "false");
    card.setAttribute("aria-labelledby", qid);
    card.setAttribute("lang", s.lang || "en");
    var close = el("button", "close", "\u00d7");
    close.type = "button";
    close.setAttribute("aria-label", "Close");
    var q = el("p", "q", s.question);
    q.id = qid;
    var scale = el("div", "scale");
    scale.setAttribute("role", "group");
    scale.setAttribute("aria-label", ui.scale_hint || "0–10");
    var buttons = [];
    for (var i = 0; i <= 10; i++) {
      var b = el("button", "n", String(i));
      b.type = "button";
      b.setAttribute("aria-pressed", "false");
      b.addEventListener("click", pick.bind(null, i));
      buttons.push(b);
      scale.appendChild(b);
    }
    var ends = el("div", "ends");
    ends.appendChild(el("span", "", ui.scale_low || ""));
    ends.appendChild(el("span", "", ui.scale_high || ""));
    ends.setAttribute("aria-hidden", "true");
    var step = el("div", "hidden");
    var label = el("label", "", "");
    var area = el("textarea", "c");
    area.id = P + "c-" + Math.random().toString(36).slice(2);
    area.maxLength = 10000;
    label.htmlFor = area.id;
    var send = el("button", "send", ui.send || "Send");
    send.type = "button";
    step.appendChild(label);
    step.appendChild(area);
    step.appendChild(send);
    var live = el("p", "");
    live.setAttribute("role", "status");
    [close, q, scale, ends, step, live].forEach(function (n) { card.appendChild(n); });
    document.body.appendChild(card);
    buttons[0].focus();

    function pick(n) {
      score = n;
      buttons.forEach(function (b, k) { b.setAttribute("aria-pressed", String(k === n)); });
      var group = n <= 6 ? "detractor" : n <= 8 ? "passive" : "promoter";
      label.textContent = (s.prompts && s.prompts[group]) || ui.comment_label || "";
      step.className = "";
      area.focus();
    }

    function remove() {
      document.removeEventListener("keydown", onKey, true);
      if (card.parentNode) card.parentNode.removeChild(card);
      if (style.parentNode) style.parentNode.removeChild(style);
      if (previousFocus && previousFocus.focus) previousFocus.focus();
    }

    function dismiss() {
      if (!done) post(base + "/in-app/v1/dismiss", { token: token }).catch(function () {});
      remove();
    }

    function onKey(e) {
      if (e.key === "Escape" || e.key === "Esc") { e.preventDefault(); dismiss(); }
    }

    send.addEventListener("click", function () {
      if (score === null) return;
      send.disabled = true;
      post(base + "/in-app/v1/answer", { token: token, score: score, comment: area.value })
        .then(function (r) {
          done = true;
          scale.className = ends.className = step.className = P + "hidden";
          q.textContent = ui.thanks_heading || "Thank you!";
          live.textContent = r.thanks || "";
          close.focus();
          setTimeout(remove, 6000);
        })
        .catch(function () { send.disabled = false; live.textContent = "Could not send. Please try again."; });
    });
    close.addEventListener("click", function () { done ? remove() : dismiss(); });
    document.addEventListener("keydown", onKey, true);
  }

  function init(options) {
    options = options || {};
    if (!options.key || !options.email || !options.signature || !window.fetch) return;
    var base = (options.endpoint || origin()).replace(/\/+$/, "");
    var query = "?key=" + encodeURIComponent(options.key) + "&email=" +
      encodeURIComponent(options.email) + "&signature=" + encodeURIComponent(options.signature);
    return fetch(base + "/in-app/v1/config" + query, { credentials: "omit" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (config) { if (config && config.due && config.token) show(base, config); })
      .catch(function () {});
  }

  window.NPSLoop = { init: init };
})(window, document);
