// Same origin, no CORS: the page asks the API under /api on its own hostname.
fetch("/api/hello")
  .then((r) => r.text())
  .then((text) => { document.getElementById("api").textContent = text; })
  .catch((err) => { document.getElementById("api").textContent = "API error: " + err; });
