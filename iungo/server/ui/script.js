// The script page: Check compiles the source without saving it.
document.getElementById("script-check").addEventListener("click", async () => {
  const out = document.getElementById("check-result");
  const res = await fetch("/ui/check", {method: "POST",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": document.querySelector("input[name=csrf]").value},
    body: JSON.stringify({name: document.getElementById("script-name").value,
                          source: document.getElementById("script-source").value})});
  const v = await res.json();
  out.className = v.ok ? "ok" : "err";
  out.textContent = v.ok ? "Compiles." : (typeof v.error === "string" ? v.error : (v.error && v.error.message) || "error");
});
