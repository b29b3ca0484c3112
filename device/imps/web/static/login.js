"use strict";
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = document.getElementById("message");
  message.textContent = "";
  const response = await fetch("/login", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({password: document.getElementById("password").value}),
  });
  if (response.ok) { window.location.replace("/"); return; }
  const data = await response.json().catch(() => ({}));
  message.textContent = data.error || `refused (${response.status})`;
});
