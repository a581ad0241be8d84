// Live update of the overview: fetch the server-rendered fragment every few
// seconds and put it in place. No library; the server escapes everything.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const box = document.querySelector("[data-live]");
  if (!box) return;
  const every = Number(box.dataset.every) || 5000;
  const tick = async () => {
    try {
      const resp = await fetch(box.dataset.live, {credentials: "same-origin"});
      if (resp.redirected || resp.status === 401 || resp.status === 403) {
        window.location.assign(resp.url);  // the session ended: to the login page
        return;
      }
      if (resp.ok) box.innerHTML = await resp.text();
    } catch (err) {
      // The service is restarting or unreachable: keep the last figures, try again.
    }
    window.setTimeout(tick, every);
  };
  window.setTimeout(tick, every);
});
