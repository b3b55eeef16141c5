app "main" {
  command = ["sleep", "infinity"]
}
