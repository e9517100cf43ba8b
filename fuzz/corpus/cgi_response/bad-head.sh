<html>no header here</html>

