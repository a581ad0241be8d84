// Swagger UI for wagate's own OpenAPI document (served by /docs).
"use strict";
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
                               presets: [SwaggerUIBundle.presets.apis]});
});
