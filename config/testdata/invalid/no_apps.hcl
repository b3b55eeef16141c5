# ERROR: Missing app block
log {
  level = "debug"
}
