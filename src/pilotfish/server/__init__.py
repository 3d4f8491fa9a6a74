"""pilotfish.server"""
