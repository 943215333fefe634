// dockroute dashboard: polls the API and shows what is routed, and why something is not.
// Everything from the API goes into the page as text (textContent), never as markup; no inline script,
// no third-party code: the page runs under a strict Content-Security-Policy.
"use strict";

(() => {
  const POLL_MS = 3000;
  const REASONS = {
    "no-port": "no port",
    "unreachable-network": "unreachable network",
    "malformed-label": "malformed label",
    "unhealthy": "unhealthy",
    "disabled": "disabled",
    "constraint": "left out by a constraint",
    "not-running": "not running",
    "conflict": "conflicting definitions",
    "error": "error",
  };

  // The API's address, relative to the page: <base>dashboard/ → <base>api/ (api.basePath, or a prefix a
  // user's router strips); a page served at a directory of its own finds the API under that directory.
  function apiBase() {
    const path = location.pathname;
    const dir = path.slice(0, path.lastIndexOf("/") + 1);
    const base = dir.endsWith("/dashboard/") ? dir.slice(0, dir.length - "dashboard/".length) : dir;
    return base + "api/";
  }
  const API = apiBase();

  class HttpError extends Error {
    constructor(status) {
      super("HTTP " + status);
      this.status = status;
    }
  }

  async function fetchJSON(path) {
    const r = await fetch(API + path, { cache: "no-store", headers: { Accept: "application/json" } });
    if (!r.ok) throw new HttpError(r.status);
    return { data: await r.json(), next: r.headers.get("X-Next-Page") };
  }

  // A list endpoint, every page of it (Traefik's per_page/page, X-Next-Page = 1 on the last page).
  async function fetchAll(path) {
    let out = [];
    let page = 1;
    for (let i = 0; i < 100; i++) {
      const { data, next } = await fetchJSON(path + "?per_page=100&page=" + page);
      if (!Array.isArray(data)) return data;
      out = out.concat(data);
      const n = Number(next);
      if (!next || !(n > page)) break;
      page = n;
    }
    return out;
  }

  // ---- DOM helpers: text only -------------------------------------------------------------------------

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function badge(text, kind) {
    return el("span", "badge " + (kind || ""), text);
  }

  function kv(label, value) {
    const d = el("div", "kv");
    d.append(el("span", "k", label));
    if (value instanceof Node) {
      value.classList.add("v");
      d.append(value);
    } else {
      d.append(el("span", "v", value === undefined || value === null || value === "" ? "–" : value));
    }
    return d;
  }

  function card(title, badges) {
    const c = el("article", "card");
    const h = el("div", "head");
    h.append(el("h3", "name", title));
    for (const b of badges || []) if (b) h.append(b);
    c.append(h);
    return c;
  }

  function list(items) {
    return items && items.length ? items.join(", ") : "none";
  }

  function statusBadge(status) {
    const kind = status === "enabled" ? "ok" : status === "warning" ? "warn" : "bad";
    return badge(status || "unknown", kind);
  }

  function errors(c, errs) {
    for (const e of errs || []) c.append(el("p", "err", e));
  }

  function date(value) {
    if (!value) return "–";
    const d = new Date(value);
    return isNaN(d) ? String(value) : d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  // ---- sections ---------------------------------------------------------------------------------------

  // An HTTP router, or (proto "TCP"/"UDP") a layer-4 one: UDP routers have no rule, TLS or middlewares.
  function routerCard(r, proto) {
    const udp = proto === "UDP";
    const c = card(r.name, [
      statusBadge(r.status),
      proto ? badge(proto, "") : null,
      udp ? null : badge(r.tls ? "TLS" : "no TLS", r.tls ? "ok" : ""),
    ]);
    if (!udp) c.append(el("code", "rule", r.rule || "(no rule)"));
    c.append(kv("Entry points", list(r.using || r.entryPoints)));
    if (!udp) {
      let tls = "no";
      if (r.tls) {
        tls = r.tls.passthrough ? "passthrough" : "yes";
        if (r.tls.certResolver) tls += " · resolver " + r.tls.certResolver;
        if (r.tls.options) tls += " · options " + r.tls.options;
      }
      c.append(kv("TLS", tls));
      c.append(kv("Middlewares", list(r.middlewares)));
    }
    c.append(kv("Service", r.service));
    c.append(kv("Provider", r.provider));
    if (r.priority !== undefined) c.append(kv("Priority", r.priority));
    errors(c, r.error);
    return c;
  }

  function serverStatusBadge(status) {
    if (!status) return badge("unknown", "");
    return badge(status, status === "UP" ? "ok" : "bad");
  }

  // Why a server is down, from serverStates ("DOWN: passive: 3 failures in 10s, ..."), beside Traefik's
  // bare serverStatus; a provider's own note (srv.unreachable) when the API has no state for it.
  function downReason(srv, state) {
    if (typeof state === "string" && state.startsWith("DOWN: ")) return state.slice("DOWN: ".length);
    return srv.unreachable || "";
  }

  function serviceCard(s, proto) {
    const c = card(s.name, [statusBadge(s.status), proto ? badge(proto, "") : null, s.type ? badge(s.type, "") : null]);
    const lb = s.loadBalancer;
    const statuses = s.serverStatus || {};
    const states = s.serverStates || {};
    if (lb && Array.isArray(lb.servers)) {
      const ul = el("ul", "servers");
      for (const srv of lb.servers) {
        const key = srv.url || srv.address || "";
        const li = el("li");
        // UDP services carry no serverStatus: no badge rather than "unknown"
        if (s.serverStatus) li.append(serverStatusBadge(statuses[key]));
        li.append(el("span", "url", key));
        const why = downReason(srv, states[key]);
        if (why) li.append(el("p", "err", why));
        ul.append(li);
      }
      if (!lb.servers.length) ul.append(el("li", "muted", "no servers"));
      c.append(ul);
    }
    const children = [];
    if (s.weighted && Array.isArray(s.weighted.services)) {
      for (const w of s.weighted.services) children.push(w.name + (w.weight !== undefined ? " ×" + w.weight : ""));
    }
    if (s.failover) children.push(s.failover.service, s.failover.fallback);
    if (s.mirroring) {
      children.push(s.mirroring.service);
      for (const m of s.mirroring.mirrors || []) children.push(m.name + " (mirror)");
    }
    if (children.length) c.append(kv("Services", list(children.filter(Boolean))));
    c.append(kv("Used by", list(s.usedBy)));
    c.append(kv("Provider", s.provider));
    errors(c, s.error);
    return c;
  }

  function daysBadge(days) {
    if (days === undefined || days === null) return badge("days left unknown", "");
    const kind = days < 14 ? "bad" : days < 30 ? "warn" : "ok";
    if (days < 0) return badge("expired " + -days + " days ago", "bad");
    return badge(days + (days === 1 ? " day left" : " days left"), kind);
  }

  function certificateCard(cert) {
    const domains = cert.domains || [];
    // no notAfter: names a resolver is asked for and has no certificate for yet (lastError says why)
    const pending = cert.status === "pending" || !cert.notAfter;
    const c = card(domains[0] || "(no name)", [pending ? badge("no certificate yet", "warn") : daysBadge(cert.daysLeft)]);
    if (domains.length > 1) c.append(kv("Also", domains.slice(1).join(", ")));
    c.append(kv("Resolver", cert.resolver || cert.source));
    c.append(kv("Issuer", cert.issuer));
    c.append(kv("Expires", date(cert.notAfter)));
    c.append(kv(pending ? "Next attempt" : "Renewal", cert.nextRenewal ? date(cert.nextRenewal) : "never"));
    if (cert.lastError) {
      c.append(el("p", "err", "Last error" + (cert.lastErrorAt ? " (" + date(cert.lastErrorAt) + ")" : "") +
        ": " + cert.lastError));
    }
    return c;
  }

  function containerCard(ct) {
    const c = card(ct.name, [badge(REASONS[ct.reason] || ct.reason || "not routed", "bad")]);
    if (ct.detail) c.append(el("p", "detail", ct.detail));
    if (ct.fix) {
      const fix = el("div", "fix");
      fix.append(el("span", "k", "Fix"), el("code", "", ct.fix));
      c.append(fix);
    }
    c.append(kv("Provider", ct.provider));
    if (ct.networks && ct.networks.length) c.append(kv("Networks", list(ct.networks)));
    if (ct.routers && ct.routers.length) c.append(kv("Routers", list(ct.routers)));
    if (ct.id) c.append(kv("ID", String(ct.id).slice(0, 12)));
    return c;
  }

  function leftOutRouterCard(r) {
    const c = card(r.name, [badge("router left out", "bad")]);
    if (r.error) c.append(el("p", "err", Array.isArray(r.error) ? r.error.join("; ") : r.error));
    c.append(kv("Provider", r.provider));
    return c;
  }

  function entryPointCard(ep) {
    const c = card(ep.name, []);
    c.append(kv("Address", ep.address));
    const redirect = ep.http && ep.http.redirections && ep.http.redirections.entryPoint;
    if (redirect) c.append(kv("Redirects to", redirect.to + (redirect.scheme ? " (" + redirect.scheme + ")" : "")));
    return c;
  }

  // ---- rendering --------------------------------------------------------------------------------------

  const last = {}; // section → the JSON it shows (nothing re-rendered while nothing changed)

  // The count beside a section's link (a section without a link of its own has none).
  function count(section, text) {
    const n = document.getElementById("n-" + section);
    if (n) n.textContent = text;
  }

  function fill(section, cards, emptyText) {
    const box = document.getElementById("list-" + section);
    box.replaceChildren(...(cards.length ? cards : [el("p", "muted empty", emptyText)]));
    count(section, String(cards.filter((c) => !c.classList.contains("group")).length));
    applyFilter(box);
  }

  function failed(section, err) {
    const box = document.getElementById("list-" + section);
    const text = err instanceof HttpError && err.status === 404 ? "Not available from this API." :
      "Could not load: " + (err && err.message ? err.message : String(err));
    box.replaceChildren(el("p", "muted empty", text));
    count(section, "?");
    delete last[section];
  }

  function render(section, result, build, emptyText) {
    if (result.status === "rejected") {
      failed(section, result.reason);
      return false;
    }
    const key = JSON.stringify(result.value);
    if (last[section] === key) return true;
    let cards;
    try {
      cards = build(result.value);
    } catch (err) {
      failed(section, err); // a shape this page does not know: say so rather than stop polling
      return false;
    }
    last[section] = key;
    fill(section, cards, emptyText);
    return true;
  }

  // Containers left out on purpose (traefik.enable=false, or not exposed by default: every database of
  // the host with exposedByDefault=false) share one card, so the ones with a problem stand out.
  function disabledCard(names) {
    const c = card("Not exposed", [badge(names.length + (names.length === 1 ? " container" : " containers"), "")]);
    c.classList.add("group"); // not counted as a problem
    c.append(el("p", "detail", "traefik.enable=false, or not exposed by default: " + names.join(", ")));
    return c;
  }

  function notRouted(discovery) {
    const containers = ((discovery && discovery.containers) || []).filter((ct) => !ct.routed || ct.reason);
    const routers = (discovery && discovery.routers) || [];
    const disabled = containers.filter((ct) => ct.reason === "disabled").map((ct) => ct.name);
    const cards = containers.filter((ct) => ct.reason !== "disabled").map(containerCard)
      .concat(routers.map(leftOutRouterCard));
    return disabled.length ? cards.concat([disabledCard(disabled)]) : cards;
  }

  function applyFilter(box) {
    const q = document.getElementById("filter").value.trim().toLowerCase();
    for (const c of box.querySelectorAll(".card")) c.hidden = q !== "" && !c.textContent.toLowerCase().includes(q);
  }

  // TCP and UDP items of one kind in one list, each tagged with its protocol: [["TCP", item], ...]. One
  // half that cannot be read leaves the other shown; only both failing fails the section.
  async function layer4(kind) {
    const halves = await Promise.allSettled([fetchAll("tcp/" + kind), fetchAll("udp/" + kind)]);
    if (halves.every((h) => h.status === "rejected")) throw halves[0].reason;
    const tagged = (h, proto) => (h.status === "fulfilled" ? h.value.map((i) => [proto, i]) : []);
    return tagged(halves[0], "TCP").concat(tagged(halves[1], "UDP"));
  }

  async function poll() {
    const [eps, routers, services, certs, discovery, version, l4routers, l4services] = await Promise.allSettled([
      fetchAll("entrypoints"),
      fetchAll("http/routers"),
      fetchAll("http/services"),
      fetchAll("certificates"),
      fetchJSON("discovery").then((r) => r.data),
      fetchJSON("version").then((r) => r.data),
      layer4("routers"),
      layer4("services"),
    ]);
    let ok = 0;
    ok += render("notrouted", discovery, notRouted, "Everything seen is routed.");
    ok += render("routers", routers, (rs) => rs.map((r) => routerCard(r)), "No routers.");
    ok += render("services", services, (ss) => ss.map((sv) => serviceCard(sv)), "No services.");
    ok += render("certificates", certs, (cs) => cs.map(certificateCard), "No certificates.");
    ok += render("l4routers", l4routers, (rs) => rs.map(([p, r]) => routerCard(r, p)), "No TCP or UDP routers.");
    ok += render("l4services", l4services, (ss) => ss.map(([p, sv]) => serviceCard(sv, p)), "No TCP or UDP services.");
    ok += render("entrypoints", eps, (es) => es.map(entryPointCard), "No entry points.");
    if (version.status === "fulfilled" && version.value && version.value.Version) {
      document.getElementById("version").textContent = "v" + version.value.Version;
    }
    const live = document.getElementById("live");
    const now = new Date().toTimeString().slice(0, 8);
    live.textContent = ok ? "updated " + now : "API unreachable (" + now + ")";
    live.className = ok ? "live" : "live down";
  }

  // One poll at a time, the next one POLL_MS after the last answer; none while the tab is hidden.
  let timer = null;
  let running = false;
  async function loop() {
    if (running) return;
    running = true;
    clearTimeout(timer);
    timer = null;
    try {
      await poll();
    } finally {
      running = false;
      if (!document.hidden) timer = setTimeout(loop, POLL_MS);
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && timer === null) loop();
  });

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("apilink").href = API + "overview";
    document.getElementById("filter").addEventListener("input", () => {
      for (const box of document.querySelectorAll(".list")) applyFilter(box);
    });
    loop();
  });
})();
