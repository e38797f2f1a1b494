// Real-shaped API answers for the preflight unit tests.

/** Pod Security admission's rejection of the default-mode preflight pod in a `restricted` namespace. */
export const PSA_REJECTION =
  'pods "oz-preflight-0f3a9c2e5b7d1e48-17329-x7k2p" is forbidden: violates PodSecurity "restricted:latest": ' +
  'allowPrivilegeEscalation != false (containers "root-init-preflight", "main" must set securityContext.allowPrivilegeEscalation=false), ' +
  'unrestricted capabilities (containers "root-init-preflight", "main" must set securityContext.capabilities.drop=["ALL"]), ' +
  'runAsNonRoot != true (pod or containers "root-init-preflight", "main" must set securityContext.runAsNonRoot=true), ' +
  'runAsUser=0 (container "root-init-preflight" must not set runAsUser=0), ' +
  'seccompProfile (pod or containers "root-init-preflight", "main" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")';
